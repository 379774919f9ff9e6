package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestImportRewindsTiers: UpdatePane lowers the cursor of every tier that
// holds the changed pane, and the next cursor write of a builder that has
// not reloaded since is refused (ErrTierRewound), so it cannot write past
// the import; the one after goes through.
func TestImportRewindsTiers(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	spec := testSpec("pv", time.Minute)
	spec.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(time.Hour)}, {Granularity: sketchd.Duration(24 * time.Hour)}}
	spec.Normalize()
	info, err := db.CreateStream(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	commit(t, db, info.ID, 10, pane("de", 3*hour+5*minute, 1, blob(1, 20)))
	for _, g := range []time.Duration{time.Hour, 24 * time.Hour} {
		if err := db.WriteTier(ctx, info.ID, g, nil, 2*day); err != nil {
			t.Fatal(err)
		}
	}
	// An import into a pane of a tier that has not reached it leaves it.
	edit := func(p *sketchd.PaneRecord, exists bool) error { p.Events++; return nil }
	if _, err := db.UpdatePane(ctx, info.ID, "de", 3*day, Import{ID: "late-pane", Aggregate: "users"}, edit); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := db.TierCursor(ctx, info.ID, time.Hour); c != 2*day {
		t.Fatalf("1h cursor %d after an import past it, want %d", c, 2*day)
	}
	if err := db.WriteTier(ctx, info.ID, time.Hour, nil, 2*day); err != nil {
		t.Fatalf("write after an import that rewound nothing: %v", err)
	}
	// An import into a built pane lowers both cursors to the tier pane
	// holding it.
	if res, err := db.UpdatePane(ctx, info.ID, "de", 3*hour+5*minute, Import{ID: "built-pane", Aggregate: "users"}, edit); err != nil || !res.Applied {
		t.Fatal(res, err)
	}
	for g, want := range map[time.Duration]int64{time.Hour: 3 * hour, 24 * time.Hour: 0} {
		if c, _, _ := db.TierCursor(ctx, info.ID, g); c != want {
			t.Errorf("%s cursor %d, want %d", g, c, want)
		}
		if err := db.WriteTier(ctx, info.ID, g, nil, 2*day); !errors.Is(err, ErrTierRewound) {
			t.Errorf("%s: a write from before the import: %v, want ErrTierRewound", g, err)
		}
		if c, _, _ := db.TierCursor(ctx, info.ID, g); c != want {
			t.Errorf("%s cursor %d after the refused write, want %d", g, c, want)
		}
		if err := db.WriteTier(ctx, info.ID, g, nil, 2*day); err != nil {
			t.Errorf("%s: the rebuilt write: %v", g, err)
		}
	}
}

// An alter that raises allowed_lateness keeps final what was final: the
// spec's FinalThrough becomes the end the old lateness made final at the
// committed watermark (stored with the spec, listed in the alter), the
// panes before it stay final under the new lateness, and the tier cursors
// stay. Lowering the lateness, or raising it again at the same watermark,
// leaves it.
func TestAlterLatenessKeepsFinality(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	spec := testSpec("pv", time.Minute)
	spec.AllowedLateness = sketchd.Duration(5 * time.Second)
	spec.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(time.Hour)}, {Granularity: sketchd.Duration(24 * time.Hour)}}
	spec.Normalize()
	ctx := t.Context()
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	wm := 2*day + 5*hour + 30*minute
	cp := sketchd.Checkpoint{Position: 10, MaxEventTime: wm, Watermark: wm}
	if err := db.Commit(ctx, info.ID, sketchd.Flush{Panes: []sketchd.PaneRecord{pane("de", 2*day+5*hour, 1, blob(1, 20))}, Checkpoint: cp}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []time.Duration{time.Hour, 24 * time.Hour} {
		if err := db.WriteTier(ctx, info.ID, g, nil, sketchd.PaneStart(wm, int64(g))); err != nil {
			t.Fatal(err)
		}
	}
	lower := spec
	lower.AllowedLateness = 0
	next, err := db.AlterStream(ctx, "pv", lower, sketchd.Alteration{Changes: []string{"lateness 0"}})
	if err != nil {
		t.Fatal(err)
	}
	if next.Spec.FinalThrough != nil {
		t.Fatalf("lowering the lateness set final_through %v", next.Spec.FinalThrough)
	}
	raised := next.Spec
	raised.AllowedLateness = sketchd.Duration(3 * time.Hour)
	next, err = db.AlterStream(ctx, "pv", raised, sketchd.Alteration{Changes: []string{"lateness 3h"}})
	if err != nil {
		t.Fatal(err)
	}
	// Under lateness 0 everything ending by the watermark was final.
	got := next.Spec.FinalThrough
	if got == nil || got.UnixNano() != wm {
		t.Fatalf("final_through %v after raising the lateness to 3h, want %v", got, time.Unix(0, wm).UTC())
	}
	if alters := next.Alters; len(alters) != 2 || !slices.Contains(alters[1].Changes, "final_through: none -> "+time.Unix(0, wm).UTC().Format(time.RFC3339Nano)) {
		t.Errorf("alters %+v: the raise does not list final_through", alters)
	}
	last := 2*day + 5*hour + 29*minute // the last pane ending by the watermark
	if !next.Spec.PaneFinalAt(last, wm) || next.Spec.PaneFinalAt(last+minute, wm) {
		t.Errorf("pane %d final %v, the next %v; want true, false", last, next.Spec.PaneFinalAt(last, wm), next.Spec.PaneFinalAt(last+minute, wm))
	}
	if next.Spec.PaneFinalAt(last+minute, wm+minute) {
		t.Error("a pane after final_through is final one pane later, before the new lateness passed")
	}
	for g, want := range map[time.Duration]int64{time.Hour: 2*day + 5*hour, 24 * time.Hour: 2 * day} {
		if c, _, _ := db.TierCursor(ctx, info.ID, g); c != want {
			t.Errorf("%s cursor %d after raising the lateness, want it kept at %d", g, c, want)
		}
	}
	// Raised again at the same watermark: what is final under 3h ends
	// before final_through, which stays.
	again := next.Spec
	again.AllowedLateness = sketchd.Duration(6 * time.Hour)
	if next, err = db.AlterStream(ctx, "pv", again, sketchd.Alteration{Changes: []string{"lateness 6h"}}); err != nil {
		t.Fatal(err)
	}
	if next.Spec.FinalThrough == nil || next.Spec.FinalThrough.UnixNano() != wm || len(next.Alters[2].Changes) != 1 {
		t.Errorf("raised again: final_through %v, changes %v; want it kept, unlisted", next.Spec.FinalThrough, next.Alters[2].Changes)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	back, err := db.Stream(ctx, "pv")
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.FinalThrough == nil || back.Spec.FinalThrough.UnixNano() != wm {
		t.Errorf("after a reopen final_through %v, want %v", back.Spec.FinalThrough, time.Unix(0, wm).UTC())
	}
}
