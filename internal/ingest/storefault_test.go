package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/window"
)

// TestStoreRefusesWrites: while the store refuses writes (disk full), the
// stream is not ready, nothing is acked (the consumer's ack floor stays at
// the last durable commit, the delivered messages stay ack-pending),
// ingestion pauses, the commit is retried with backoff, queries keep
// answering, and metrics show it. When writes work again every event is
// counted exactly once.
//
//	go test -race ./internal/ingest -run TestStoreRefusesWrites -v
func TestStoreRefusesWrites(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(t, t.TempDir())
	fs := &faultStore{DB: db}
	spec := pageviews("sf", true)
	ctx := context.Background()
	m := newManager(t, nc, fs, Options{FlushInterval: 20 * time.Millisecond, MaxCommitBackoff: 200 * time.Millisecond})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	q := newQuerier(t, db, query.Options{})

	evs := genEvents(11, 5000)
	first, second := evs[:2000], evs[2000:]
	msgs := 0
	publish := func(evs []event) {
		t.Helper()
		for i := 0; i < len(evs); i += 5 {
			if _, err := js.Publish(ctx, spec.Subject, joinLines(evs[i:min(i+5, len(evs))])); err != nil {
				t.Fatal(err)
			}
			msgs++
		}
	}

	// Phase 1: healthy.
	publish(first)
	waitConsumed(t, js, spec, msgs)
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("not ready while healthy: %v", err)
	}
	st, _ := m.Get(ctx, spec.Name)
	checkPanes(t, db, st.ID, truthOf(first))
	healthyFloor := uint64(msgs)

	// Phase 2: the disk fills up. A flush with nothing new commits
	// nothing, so one probe message makes the next commit fail.
	fs.breakWrites(errDiskFull)
	r := runnerOf(t, m, spec.Name)
	publish(second[:5])
	waitFor(t, 10*time.Second, "a failed commit", func() (bool, string) {
		return r.committer.failing.Load(), fmt.Sprintf("commit errors %d", r.committer.commitErrors.Load())
	})
	publish(second[5:])
	// Wait until the server has delivered new messages to sketchd and at
	// least three more retries failed.
	errsBefore := fs.failed.Load()
	waitFor(t, 20*time.Second, "deliveries and failed retries", func() (bool, string) {
		ci := consumerInfo(t, js, spec)
		return ci.NumAckPending > 0 && fs.failed.Load() >= errsBefore+3,
			fmt.Sprintf("ack pending %d, failed commits %d", ci.NumAckPending, fs.failed.Load())
	})
	err := m.Ready(ctx)
	if !isUnavailable(err) || !strings.Contains(fmt.Sprint(err), "no space left") {
		t.Errorf("Ready while the store refuses writes = %v, want an ErrUnavailable naming the cause", err)
	}
	ci := consumerInfo(t, js, spec)
	if ci.AckFloor.Stream != healthyFloor {
		t.Errorf("ack floor moved to %d while commits fail; last durable commit covers %d", ci.AckFloor.Stream, healthyFloor)
	}
	if ci.NumAckPending == 0 {
		t.Error("no message ack-pending while commits fail")
	}
	cp, _, err := db.Checkpoint(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := sketchd.PositionSeq(cp.Position); got != healthyFloor {
		t.Errorf("stored checkpoint at sequence %d, want %d", got, healthyFloor)
	}
	// Ingestion is paused: nothing published after the failure was applied.
	if got := applied(mustStatus(t, m, spec.Name)); got != uint64(len(first)+5) {
		t.Errorf("%d events applied while commits fail, want the %d of before the failure (intake not paused)", got, len(first)+5)
	}
	// Queries keep answering from the store.
	if n, err := queryEvents(ctx, q, mustStatus(t, m, spec.Name)); err != nil || n != uint64(len(first)) {
		// The committed state: the probe is not durable.
		t.Errorf("query while the store refuses writes: %d events, %v; want %d", n, err, len(first))
	}
	// Metrics show it.
	if v := mustMetric(t, m, "sketchd_commit_failing", spec.Name); v != 1 {
		t.Errorf("sketchd_commit_failing = %v, want 1", v)
	}
	if v := mustMetric(t, m, "sketchd_commit_errors_total", spec.Name); v < 3 {
		t.Errorf("sketchd_commit_errors_total = %v, want >= 3", v)
	}
	t.Logf("while failing: failed commit attempts %d, ack floor %d, ack pending %d", fs.failed.Load(), ci.AckFloor.Stream, ci.NumAckPending)

	// Phase 3: space is freed.
	fs.healWrites()
	waitConsumed(t, js, spec, msgs)
	waitFor(t, 10*time.Second, "ready again", func() (bool, string) {
		err := m.Ready(ctx)
		return err == nil, fmt.Sprint(err)
	})
	st = mustStatus(t, m, spec.Name)
	if got := applied(st); got != uint64(len(evs)) {
		t.Errorf("%d events applied, want %d", got, len(evs))
	}
	checkPanes(t, db, st.ID, truthOf(evs))
	if v := mustMetric(t, m, "sketchd_commit_failing", spec.Name); v != 0 {
		t.Errorf("sketchd_commit_failing = %v after recovery, want 0", v)
	}
	if v := mustMetric(t, m, "sketchd_uncommitted_panes", spec.Name); v != 0 {
		t.Errorf("sketchd_uncommitted_panes = %v after recovery, want 0", v)
	}
	_, total := paneTotals(t, db, st.ID)
	t.Logf("events=%d in panes=%d lost=%d doubled=%d; failed commit attempts=%d", len(evs), total,
		sub0(uint64(len(evs)), total), sub0(total, uint64(len(evs))), fs.failed.Load())
}

// TestStoreFailsUntilRestart: the store keeps refusing writes until the
// process stops. Stop does not hang on the paused intake and says the final
// commit failed; a new run (writes work again) resumes from the last
// durable checkpoint and counts every event exactly once. The open-pane
// cap is tiny so that panes evicted early are reloaded across the failed
// commits.
//
//	go test -race ./internal/ingest -run TestStoreFailsUntilRestart -v
func TestStoreFailsUntilRestart(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(t, t.TempDir())
	fs := &faultStore{DB: db}
	spec := pageviews("sfr", true)
	ctx := context.Background()
	opts := Options{FlushInterval: 20 * time.Millisecond, MaxCommitBackoff: 200 * time.Millisecond, Window: window.Options{MaxOpenPanes: 4, Shards: 2}}
	m := newManager(t, nc, fs, opts)
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	evs := genEvents(12, 6000)
	msgs := 0
	publish := func(evs []event) {
		t.Helper()
		for i := 0; i < len(evs); i += 10 {
			if _, err := js.Publish(ctx, spec.Subject, joinLines(evs[i:min(i+10, len(evs))])); err != nil {
				t.Fatal(err)
			}
			msgs++
		}
	}
	publish(evs[:3000])
	waitConsumed(t, js, spec, msgs)
	// Everything acked is in the store (an early-evicted pane reloaded
	// before its flush was committed once lost events here).
	st0 := mustStatus(t, m, spec.Name)
	checkPanes(t, db, st0.ID, truthOf(evs[:3000]))
	if st := mustStatus(t, m, spec.Name); st.EvictedEarly == 0 {
		t.Fatalf("no early eviction with MaxOpenPanes 4: the test does not exercise reloads (%+v)", st)
	}
	fs.breakWrites(errDiskFull)
	publish(evs[3000:])
	r := runnerOf(t, m, spec.Name)
	waitFor(t, 10*time.Second, "failed commits", func() (bool, string) {
		return r.committer.failing.Load() && fs.failed.Load() >= 2, fmt.Sprint(fs.failed.Load())
	})
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := m.Stop(stopCtx)
	if stopCtx.Err() != nil {
		t.Fatal("Stop hung while the store refused writes")
	}
	if !errors.Is(err, errDiskFull) {
		t.Errorf("Stop = %v, want the commit failure", err)
	}
	if ci := consumerInfo(t, js, spec); ci.AckFloor.Stream > 300 {
		t.Errorf("ack floor %d past the last durable commit (300 messages)", ci.AckFloor.Stream)
	}

	fs.healWrites()
	m2 := newManager(t, nc, fs, opts)
	if err := m2.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m2.Stop(ctx) }()
	waitConsumed(t, js, spec, msgs)
	waitFor(t, 10*time.Second, "all events in panes", func() (bool, string) {
		st := mustStatus(t, m2, spec.Name)
		_, total := paneTotals(t, db, st.ID)
		return total >= uint64(len(evs)), fmt.Sprintf("%d of %d", total, len(evs))
	})
	st := mustStatus(t, m2, spec.Name)
	checkPanes(t, db, st.ID, truthOf(evs))
	if got := applied(st); got != uint64(len(evs)) {
		t.Errorf("counters: %d applied, want %d", got, len(evs))
	}
	_, total := paneTotals(t, db, st.ID)
	t.Logf("events=%d in panes=%d lost=%d doubled=%d; evicted early=%d failed commit attempts=%d", len(evs), total,
		sub0(uint64(len(evs)), total), sub0(total, uint64(len(evs))), st.EvictedEarly, fs.failed.Load())
}

func mustStatus(tb testing.TB, m *Manager, name string) sketchd.StreamStatus {
	tb.Helper()
	st, err := m.Get(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}
