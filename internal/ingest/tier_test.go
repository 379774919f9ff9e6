package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// tierSpec is a stream of 1s panes with tiers of 5s and 30s.
func tierSpec(name string) sketchd.Stream {
	s := pageviews(name, true)
	s.Granularity = sketchd.Duration(time.Second)
	s.MaxOutOfOrderness = sketchd.Duration(time.Second)
	s.AllowedLateness = sketchd.Duration(2 * time.Second)
	s.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(5 * time.Second)}, {Granularity: sketchd.Duration(30 * time.Second)}}
	s.Normalize()
	return s
}

// checkTiers checks every built tier pane of the stream against its
// recomputation from its source panes (the stream's own for the first
// tier, the tier below's for the others), and that no source pane before
// the tier's cursor lacks its tier pane. It returns each tier's cursor and
// the events its panes hold.
func checkTiers(tb testing.TB, db *store.DB, info store.StreamInfo) (cursors []int64, events []uint64) {
	tb.Helper()
	ctx := context.Background()
	spec := info.Spec
	m, err := newPaneMerger(&spec)
	if err != nil {
		tb.Fatal(err)
	}
	for i, t := range spec.Rollups {
		g := int64(t.Granularity)
		c, ok, err := db.TierCursor(ctx, info.ID, t.Granularity.Std())
		if err != nil || !ok {
			tb.Fatalf("tier %s: cursor %v %v", t.Granularity, ok, err)
		}
		src := time.Duration(spec.RollupSource(i))
		if i == 0 {
			src = 0
		}
		want := map[pk][]sketchd.PaneRecord{}
		for _, p := range spacePanes(tb, db, info.ID, src, c) {
			k := pk{p.Key, sketchd.PaneStart(p.Start, g)}
			want[k] = append(want[k], p)
		}
		got := map[pk]sketchd.PaneRecord{}
		var n uint64
		for _, p := range spacePanes(tb, db, info.ID, t.Granularity.Std(), c) {
			got[pk{p.Key, p.Start}] = p
			n += p.Events
		}
		for k, srcs := range want {
			g, ok := got[k]
			if !ok {
				tb.Errorf("tier %s: no pane for key %q at %d (%d source panes)", t.Granularity, k.key, k.start, len(srcs))
				continue
			}
			w, err := m.merge(k.key, k.start, srcs)
			if err != nil {
				tb.Fatal(err)
			}
			if g.Events != w.Events || !g.Final {
				tb.Errorf("tier %s pane %q@%d: %d events (final %v), recomputed %d", t.Granularity, k.key, k.start, g.Events, g.Final, w.Events)
			}
			for a := range w.Sketches {
				if string(g.Sketches[a]) != string(w.Sketches[a]) {
					tb.Errorf("tier %s pane %q@%d: aggregate %d differs from its recomputation", t.Granularity, k.key, k.start, a)
				}
			}
		}
		if len(got) != len(want) {
			tb.Errorf("tier %s: %d panes, its sources make %d", t.Granularity, len(got), len(want))
		}
		cursors, events = append(cursors, c), append(events, n)
	}
	return cursors, events
}

// spacePanes returns the panes of one space (tier 0: the base panes) that
// start before end.
func spacePanes(tb testing.TB, db *store.DB, id uint32, tier time.Duration, end int64) []sketchd.PaneRecord {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	if err := db.TierKeys(ctx, id, tier, -1<<62, end, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		tb.Fatal(err)
	}
	var out []sketchd.PaneRecord
	err := db.ScanTierPanes(ctx, id, tier, keys, -1<<62, end, func(r sketchd.PaneRecord) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestTiersBuildFromFinalPanes ingests a minute of events, some late within
// the allowed lateness, then one far ahead that makes them final; the tiers
// must hold every applied event, each tier pane equal to the merge of its
// source panes, and none built past what was final.
func TestTiersBuildFromFinalPanes(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := tierSpec("tiers")
	m := newManager(t, nc, db, Options{})
	ctx := context.Background()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	evs := genEvents(7, 6000) // 60 s, 10 ms apart
	last := evs[len(evs)-1].TS
	// Late but applied: the watermark is last-1s, past their pane's end by less than the allowed lateness.
	for i := range 20 {
		evs = append(evs, event{TS: last - 2500, Country: "LATE", User: fmt.Sprint("l", i), URL: "/late", MS: 1})
	}
	publish := func(evs []event) {
		for i := 0; i < len(evs); i += 50 {
			if _, err := js.Publish(ctx, spec.Subject, joinLines(evs[i:min(i+50, len(evs))])); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(evs)
	waitFor(t, 20*time.Second, "applied", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		return applied(st) == uint64(len(evs)), fmt.Sprintf("%+v", st.Counters)
	})
	st, _ := m.Get(ctx, spec.Name)
	if st.Counters.Late != 20 {
		t.Fatalf("late %d, want 20", st.Counters.Late)
	}
	// No tier is built past what is final, and none yet covers the late
	// events' pane, which they reach when it is final.
	latePane := time.UnixMilli(last - 2500).UnixNano()
	for _, r := range st.Rollups {
		if r.BuiltTo != sketchd.NoTime && (r.BuiltTo+int64(spec.AllowedLateness) > st.CommittedWatermark || r.BuiltTo > latePane) {
			t.Errorf("tier %s built to %d: committed watermark %d, late pane %d", r.Granularity, r.BuiltTo, st.CommittedWatermark, latePane)
		}
	}
	// One event 10 minutes ahead: everything before is final.
	publish([]event{{TS: last + 600_000, Country: "DE", User: "x", URL: "/", MS: 1}})
	end := sketchd.PaneStart(time.UnixMilli(last).UnixNano(), int64(30*time.Second)) + int64(30*time.Second)
	waitFor(t, 20*time.Second, "tiers built", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		if len(st.Rollups) != 2 {
			return false, fmt.Sprintf("rollups %+v", st.Rollups)
		}
		return st.Rollups[1].BuiltTo >= end, fmt.Sprintf("%+v", st.Rollups)
	})
	info, err := db.Stream(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	cursors, events := checkTiers(t, db, info)
	for i, n := range events {
		if n != uint64(len(evs)) {
			t.Errorf("tier %s holds %d events, want %d (cursor %d)", spec.Rollups[i].Granularity, n, len(evs), cursors[i])
		}
	}
	// The last event's pane is not final: no tier covers it.
	for i, c := range cursors {
		if c > time.UnixMilli(last+600_000).UnixNano() {
			t.Errorf("tier %d cursor %d past the open pane", i, c)
		}
	}
}

// TestTiersAddedToExistingStream gives a stream with stored panes tiers
// (SetRollups, as an alter would), checks the builder builds them from
// those panes in the background and shows it in the status, and that a
// restart resumes from the stored cursors; then removes a tier.
func TestTiersAddedToExistingStream(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	dir := t.TempDir()
	db := openStore(t, dir)
	withTiers := tierSpec("grow")
	spec := withTiers
	spec.Rollups = nil
	m := newManager(t, nc, db, Options{})
	ctx := context.Background()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	evs := genEvents(3, 6000)
	last := evs[len(evs)-1].TS
	evs = append(evs, event{TS: last + 600_000, Country: "DE", User: "x", URL: "/", MS: 1})
	for i := 0; i < len(evs); i += 100 {
		if _, err := js.Publish(ctx, spec.Subject, joinLines(evs[i:min(i+100, len(evs))])); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "committed", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		return applied(st) == uint64(len(evs)) && st.CommittedWatermark >= time.UnixMilli(last+590_000).UnixNano(), fmt.Sprintf("%+v", st.Counters)
	})
	if st, _ := m.Get(ctx, spec.Name); st.Rollups != nil {
		t.Fatalf("rollups %+v before any", st.Rollups)
	}
	st, err := m.SetRollups(ctx, spec.Name, withTiers.Rollups)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Spec.Rollups) != 2 || st.Spec.Rollups[1].Retention != spec.Retention {
		t.Fatalf("spec rollups %+v", st.Spec.Rollups)
	}
	if _, err := m.SetRollups(ctx, spec.Name, []sketchd.Rollup{{Granularity: sketchd.Duration(1500 * time.Millisecond)}}); err == nil {
		t.Error("a tier of 1.5s over 1s panes was accepted")
	}
	end := sketchd.PaneStart(time.UnixMilli(last).UnixNano(), int64(30*time.Second)) + int64(30*time.Second)
	waitFor(t, 20*time.Second, "tiers built from stored panes", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		return len(st.Rollups) == 2 && st.Rollups[1].BuiltTo >= end, fmt.Sprintf("%+v", st.Rollups)
	})
	info, _ := db.Stream(ctx, spec.Name)
	cursors, events := checkTiers(t, db, info)
	for i, n := range events {
		if n != uint64(len(evs)-1) {
			t.Errorf("tier %d: %d events, want %d", i, n, len(evs)-1)
		}
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// A restart, configured with the tiers: the cursors are resumed.
	m2 := newManager(t, nc, db, Options{})
	if err := m2.Start(ctx, []sketchd.Stream{withTiers}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m2.Stop(context.Background()) }()
	waitFor(t, 10*time.Second, "cursors resumed", func() (bool, string) {
		st, _ := m2.Get(ctx, spec.Name)
		return len(st.Rollups) == 2 && st.Rollups[0].BuiltTo >= cursors[0] && st.Rollups[1].BuiltTo >= cursors[1], fmt.Sprintf("%+v, stored %v", st.Rollups, cursors)
	})

	// Removing the 30s tier drops its panes.
	if _, err := m2.SetRollups(ctx, spec.Name, withTiers.Rollups[:1]); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.TierCursor(ctx, info.ID, 30*time.Second); ok {
		t.Error("the removed tier's cursor is still stored")
	}
	if n := len(spacePanes(t, db, info.ID, 30*time.Second, 1<<62)); n != 0 {
		t.Errorf("the removed tier still has %d panes", n)
	}
}
