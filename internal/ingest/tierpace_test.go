package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// TestTierPace: the builder waits while the JetStream consumer has more
// than tierBacklogPulls prefetches pending, at most tierMaxDefers passes in
// a row; never for a core NATS stream or a short backlog.
func TestTierPace(t *testing.T) {
	r := &runner{spec: sketchd.Stream{JetStream: true}, m: &Manager{opts: Options{PullMaxMessages: 4}}}
	var p tierPace
	r.consumer.numPending.Store(16) // 4 prefetches: not a backlog
	if p.wait(r) {
		t.Fatal("waited with 16 pending, 4 prefetches of 4")
	}
	r.consumer.numPending.Store(17)
	for i := range tierMaxDefers {
		if !p.wait(r) {
			t.Fatalf("pass %d built with 17 pending", i+1)
		}
	}
	if p.wait(r) {
		t.Fatalf("waited more than %d passes in a row", tierMaxDefers)
	}
	if !p.wait(r) {
		t.Fatal("the count of passes in a row did not start again after a build")
	}
	if got := r.tiers.deferred.Load(); got != tierMaxDefers+1 {
		t.Errorf("deferred passes %d, want %d", got, tierMaxDefers+1)
	}
	r.spec.JetStream = false
	p = tierPace{}
	if p.wait(r) {
		t.Error("a core NATS stream waited")
	}
}

// TestTiersWaitForBacklog creates a stream with tiers over a JetStream
// backlog of single-event messages: the builder defers while the backlog
// drains, then builds every tier pane, each equal to the merge of its
// sources, and the metrics say so.
func TestTiersWaitForBacklog(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(t, t.TempDir())
	spec := tierSpec("backlog")
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: spec.JetStreamStream, Subjects: []string{spec.Subject}}); err != nil {
		t.Fatal(err)
	}
	evs := genEvents(11, 60000) // 600 s, 10 ms apart
	// One event 10 minutes ahead: everything before is final.
	evs = append(evs, event{TS: evs[len(evs)-1].TS + 600_000, Country: "DE", User: "x", URL: "/", MS: 1})
	for _, e := range evs {
		if _, err := js.PublishAsync(spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	// Prefetches of 256: a backlog past 1,024 pending defers. (With 8,
	// the stream applied 53 of 20,001 events in 30 s once, under the
	// whole suite with -race; why was not found.)
	m := newManager(t, nc, db, Options{PullMaxMessages: 256})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	end := sketchd.PaneStart(time.UnixMilli(evs[len(evs)-2].TS).UnixNano(), int64(30*time.Second)) + int64(30*time.Second)
	var st sketchd.StreamStatus
	waitFor(t, 30*time.Second, "applied and tiers built", func() (bool, string) {
		st, _ = m.Get(ctx, spec.Name)
		return applied(st) == uint64(len(evs)) && len(st.Rollups) == 2 && st.Rollups[1].BuiltTo >= end,
			fmt.Sprintf("%+v %+v", st.Counters, st.Rollups)
	})
	deferred := mustMetric(t, m, "sketchd_rollup_passes_deferred_total", spec.Name)
	t.Logf("%d messages: %v passes deferred", len(evs), deferred)
	if deferred == 0 {
		t.Error("no pass deferred while the backlog drained")
	}
	info, err := db.Stream(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, events := checkTiers(t, db, info)
	for i, n := range events {
		if n != uint64(len(evs)-1) {
			t.Errorf("tier %s holds %d events, want %d", spec.Rollups[i].Granularity, n, len(evs)-1)
		}
	}
	for _, r := range st.Rollups {
		if got := mustMetric(t, m, "sketchd_rollup_built_to_timestamp_seconds", spec.Name, r.Granularity.String()); got != seconds(r.BuiltTo) {
			t.Errorf("tier %s: built_to metric %v, status %v", r.Granularity, got, seconds(r.BuiltTo))
		}
	}
	if n := mustMetric(t, m, "sketchd_rollup_units_built_total", spec.Name); n == 0 {
		t.Error("no units built counted")
	}
	if n := mustMetric(t, m, "sketchd_rollup_build_errors_total", spec.Name); n != 0 {
		t.Errorf("%v build errors", n)
	}
}

// TestTierReadyWhileDeferred: a deferred pass still moves each tier's
// ready_to (the status's "how far its sources are final"): the first
// tier's from the committed watermark, the next one's from the tier below's
// cursor.
func TestTierReadyWhileDeferred(t *testing.T) {
	spec := tierSpec("ready") // 1s panes, lateness 2s, tiers 5s and 30s
	r := &runner{spec: spec}
	r.tiers.init(len(spec.Rollups))
	b := &tierBuilder{r: r}
	s := int64(time.Second)
	r.committer.committedWM.Store(73 * s)
	r.tiers.cursors[0].Store(65 * s)
	b.refreshReady()
	// Final to 71 s: the 5s tier's units end by 70 s; the 30s tier's
	// source (the 5s tier) is built to 65 s: its units end by 60 s.
	if got0, got1 := r.tiers.ready[0].Load(), r.tiers.ready[1].Load(); got0 != 70*s || got1 != 60*s {
		t.Errorf("ready_to %v, %v; want 70s, 60s", time.Duration(got0), time.Duration(got1))
	}
}

// TestRollupsInStatusWhileBackfilling: while a backfill holds the stream's
// runner stopped, its status still lists the rollup tiers, each built to
// its stored cursor (black-box round 4 saw them missing).
func TestRollupsInStatusWhileBackfilling(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(t, t.TempDir())
	spec := tierSpec("bfst")
	ctx := context.Background()
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	evs := genEvents(5, 3000) // 30 s, 10 ms apart
	evs = append(evs, event{TS: evs[len(evs)-1].TS + 600_000, Country: "DE", User: "x", URL: "/", MS: 1})
	publishEvents(t, js, spec.Subject, evs)
	var built []sketchd.RollupStatus
	waitFor(t, 20*time.Second, "tiers built", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		built = st.Rollups
		return applied(st) == uint64(len(evs)) && len(built) == 2 && built[1].BuiltTo != sketchd.NoTime, fmt.Sprintf("%+v", built)
	})
	release := make(chan struct{})
	var once sync.Once
	beforeBackfillFetch = func() bool { <-release; return false }
	t.Cleanup(func() { once.Do(func() { close(release) }); beforeBackfillFetch = nil })
	if _, err := m.Alter(ctx, spec.Name, sketchd.StreamAlter{Backfill: true, Aggregates: map[string]*sketchd.Aggregate{
		"users2": {Sketch: sketchd.KindHLL, Field: "user"},
	}}); err != nil {
		t.Fatal(err)
	}
	st, err := m.Get(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "backfilling" || len(st.Rollups) != 2 {
		t.Fatalf("while backfilling: state %q, rollups %+v", st.State, st.Rollups)
	}
	for i, r := range st.Rollups {
		if r.Granularity != spec.Rollups[i].Granularity || r.BuiltTo < built[i].BuiltTo {
			t.Errorf("tier %d while backfilling: %+v, built before %+v", i, r, built[i])
		}
	}
	once.Do(func() { close(release) })
}
