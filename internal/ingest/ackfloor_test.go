package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// TestResetAckFloorIsNotCommit: a consumer reset (in place, as delete +
// create) puts the server's ack floor just below its start, the first
// sequence not handed to the intake, whether or not the intake has
// processed and committed what it holds. So "ack floor ≥ n, nothing
// pending" does not mean n messages are committed: here 50 messages are
// handed over but not committed (the store refuses writes) while the
// consumer reports all 50 acked. This is
// how TestJetStreamOutages, which waited for the ack floor only, counted
// 6,398 of 8,000 events under load (its last reset landed after the whole
// backlog was handed over; 7,422 applied, the rest still queued). The
// tests wait for the committed sequence too (waitCommitted); afterwards
// every event is in the panes once.
func TestResetAckFloorIsNotCommit(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	fs := &faultStore{DB: openStore(t, t.TempDir())}
	db := fs.DB
	spec := pageviews("floor", true)
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	m := newManager(t, nc, fs, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	r := runnerOf(t, m, spec.Name)
	st := mustStatus(t, m, spec.Name)

	fs.breakWrites(errDiskFull) // nothing is committed, and the intake pauses
	evs := genEvents(11, 50)
	for _, e := range evs {
		if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	n := uint64(len(evs))
	waitFor(t, 20*time.Second, "all messages handed to the intake", func() (bool, string) {
		return r.consumer.nextSeq.Load() == n+1, fmt.Sprint(r.consumer.nextSeq.Load())
	})
	r.requestReset(r.consumer.epoch.Load()) // as after a reconnection
	waitFor(t, 20*time.Second, "the reset", func() (bool, string) {
		return !r.consumer.resetting.Load(), "resetting"
	})
	ci := consumerInfo(t, js, spec)
	_, total := paneTotals(t, db, st.ID)
	if ci.AckFloor.Stream != n || ci.NumPending != 0 || ci.NumAckPending != 0 {
		t.Errorf("after the reset at %d: ack floor %d, pending %d, ack pending %d; want %d, 0, 0 (a server that keeps the floor at the last ack would make this test moot)",
			n+1, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending, n)
	}
	if c := r.committer.committedSeq.Load(); c >= n || total != 0 {
		t.Fatalf("committed sequence %d, %d events in panes with the intake paused", c, total)
	}
	t.Logf("ack floor %d with the committed sequence at %d and %d events in panes", ci.AckFloor.Stream, r.committer.committedSeq.Load(), total)

	fs.healWrites()
	waitCommitted(t, m, spec.Name, len(evs))
	checkPanes(t, db, st.ID, truthOf(evs))
}

// waitCommitted waits until the runner of name has committed JetStream
// sequence n (the consumer's ack floor alone does not show it: see
// TestResetAckFloorIsNotCommit).
func waitCommitted(tb testing.TB, m *Manager, name string, n int) {
	tb.Helper()
	r := runnerOf(tb, m, name)
	waitFor(tb, 60*time.Second, "commits up to the last sequence", func() (bool, string) {
		c := r.committer.committedSeq.Load()
		return c >= uint64(n), fmt.Sprintf("committed up to sequence %d of %d", c, n)
	})
}
