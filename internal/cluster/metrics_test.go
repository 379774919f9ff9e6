package cluster

import (
	"context"
	crand "crypto/rand"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestMirrorMetrics: a mirror registered with WithRegisterer exports its
// stream's applied sequence, pending sequences, panes and records applied,
// corrupt messages skipped and restored flag, read through a real
// registry before and after catching up with a 3-node changelog; the
// expected values come from the changelog (its last sequence) and the
// owners' models (the panes that survive compaction). A second mirror of
// the stream cannot register until the first is closed.
func TestMirrorMetrics(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	const partitions = 2
	models := make([]model, partitions)
	writers := make([]*Writer, partitions)
	gens := make([]*flushGen, partitions)
	commit := func(p, panes int) {
		t.Helper()
		fl := gens[p].next(&models[p], panes, 100)
		if _, err := writers[p].Commit(ctx, fl); err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
		models[p].apply(fl)
	}
	for p := range partitions {
		writers[p] = f.writer(t, p, p, "owner")
		gens[p] = &flushGen{rng: rand.New(rand.NewPCG(uint64(p), 21))}
		claim(t, writers[p])
		for i := range 2 + p {
			commit(p, 10+7*i)
		}
	}
	nc := f.c.Connect(t, 2)
	publishStored(ctx, t, jetStream(t, nc), strings.TrimSuffix(f.cl.CheckpointSubject(0), ".c")+".x", []byte("junk"))
	distinct := func() float64 {
		n := 0
		for p := range models {
			n += len(models[p].panes)
		}
		return float64(n)
	}

	reg := prometheus.NewRegistry()
	db, sids := openStore(t, partitions)
	mirror, err := NewMirror(ctx, jetStream(t, nc), f.cl, sids, db, nil, WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	last := float64(f.lastSeq(t))
	checkMetrics(t, reg, "before", map[string]float64{"applied_sequence": 0, "pending": last,
		"panes_applied_total": 0, "records_applied_total": 0, "skipped_corrupt_total": 0, "restored": 0, ownerChanges: 0})

	if err := mirror.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Compaction keeps one record per partition and the newest version of
	// each pane: that is what a fresh mirror applies.
	checkMetrics(t, reg, "caught up", map[string]float64{"applied_sequence": last, "pending": 0,
		"panes_applied_total": distinct(), "records_applied_total": partitions, "skipped_corrupt_total": 1, "restored": 1, ownerChanges: 0})

	before := distinct()
	commit(1, 9) // the mirror reads only the new flush: its 9 panes and record
	if err := mirror.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, reg, "after one more commit", map[string]float64{"applied_sequence": float64(f.lastSeq(t)), "pending": 0,
		"panes_applied_total": before + 9, "records_applied_total": partitions + 1,
		"skipped_corrupt_total": 1, "restored": 1, ownerChanges: 0})

	if _, err := NewMirror(ctx, jetStream(t, nc), f.cl, sids, db, nil, WithRegisterer(reg)); err == nil || !strings.Contains(err.Error(), "close it first") {
		t.Fatalf("a second mirror of the stream registered: %v", err)
	}
	mirror.Close()
	mirror.Close() // idempotent
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("after Close: %d series (%v), want none", n, err)
	}
	again, err := NewMirror(ctx, jetStream(t, nc), f.cl, sids, db, nil, WithRegisterer(reg))
	if err != nil {
		t.Fatalf("a mirror after the first closed: %v", err)
	}
	again.Close()
}

// publishStored publishes data to subject, a test's own message to a
// changelog, and returns once the stream stored it. A cluster just
// started may not answer for a while (no responders from node 2 for over
// the client's 0.5 s of retries in a CI run: TestMirrorMetrics), so
// unanswered attempts are sent again as admin requests are (retryAdmin);
// the message id makes a resend of one that landed unseen a duplicate the
// stream drops.
func publishStored(ctx context.Context, tb testing.TB, js jetstream.JetStream, subject string, data []byte) {
	tb.Helper()
	id := crand.Text()
	if err := retryAdmin(ctx, func(ctx context.Context) error {
		_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(id))
		return err
	}); err != nil {
		tb.Fatalf("publish to %s: %v", subject, err)
	}
}

// ownerChanges is the mirror's owner-change counter in checkMetrics' map:
// the writers claimed before the mirror was made, so it counts none.
const ownerChanges = "sketchd_partition_owner_changes_total"

// checkMetrics compares the sketchd_mirror_* series of stream "pageviews"
// gathered from reg with want (names without the prefix).
// The restarts series' names in checkMetrics.
const (
	restartsStalled = `restarts_total{"stalled"}`
	restartsError   = `restarts_total{"error"}`
)

func checkMetrics(tb testing.TB, reg *prometheus.Registry, when string, want map[string]float64) {
	tb.Helper()
	got := map[string]float64{}
	for series, v := range promtest.Series(tb, reg) {
		name, ok := strings.CutSuffix(series, `{stream="pageviews"}`)
		if reason, isRestarts := strings.CutPrefix(series, "sketchd_mirror_restarts_total{reason="); isRestarts {
			reason, ok = strings.CutSuffix(reason, `,stream="pageviews"}`)
			name = "sketchd_mirror_restarts_total{" + reason + "}"
		}
		if !ok {
			tb.Errorf("%s: %s has labels other than the stream's", when, series)
		}
		got[strings.TrimPrefix(name, "sketchd_mirror_")] = v
	}
	for _, r := range []string{restartsStalled, restartsError} { // none unless said
		if _, ok := want[r]; !ok {
			want[r] = 0
		}
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			tb.Errorf("%s: sketchd_mirror_%s = %v (present %v), want %v", when, name, g, ok, w)
		}
	}
	if len(got) != len(want) {
		tb.Errorf("%s: series %v, want %v", when, got, want)
	}
}
