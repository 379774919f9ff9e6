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
	if _, err := db.UpdatePane(ctx, info.ID, "de", 3*day, "late-pane", edit); err != nil {
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
	if ok, err := db.UpdatePane(ctx, info.ID, "de", 3*hour+5*minute, "built-pane", edit); err != nil || !ok {
		t.Fatal(ok, err)
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
