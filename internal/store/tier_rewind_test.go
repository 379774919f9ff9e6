package store

import (
	"errors"
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

// An alter that raises allowed_lateness lowers the tier cursors to the
// first pane no longer final under it (a pane before, for the edges):
// late events may now reach panes the tiers merged, and the builder
// builds them again once final. Lowering it leaves them.
func TestAlterLatenessRewindsTiers(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
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
	if _, err := db.AlterStream(ctx, "pv", lower, sketchd.Alteration{Changes: []string{"lateness 0"}}); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := db.TierCursor(ctx, info.ID, time.Hour); c != 2*day+5*hour {
		t.Fatalf("1h cursor %d after lowering the lateness, want it kept at %d", c, 2*day+5*hour)
	}
	raised := spec
	raised.AllowedLateness = sketchd.Duration(3 * time.Hour)
	if _, err := db.AlterStream(ctx, "pv", raised, sketchd.Alteration{Changes: []string{"lateness 3h"}}); err != nil {
		t.Fatal(err)
	}
	// Not final under 3h: panes from 2d+2h30m; a pane before: 2d+2h29m.
	for g, want := range map[time.Duration]int64{time.Hour: 2*day + 2*hour, 24 * time.Hour: 2 * day} {
		if c, _, _ := db.TierCursor(ctx, info.ID, g); c != want {
			t.Errorf("%s cursor %d after raising the lateness to 3h, want %d", g, c, want)
		}
	}
	if err := db.WriteTier(ctx, info.ID, time.Hour, nil, 2*day+5*hour); !errors.Is(err, ErrTierRewound) {
		t.Errorf("a write from before the alter: %v, want ErrTierRewound", err)
	}
}
