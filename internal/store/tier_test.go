package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// tierStream creates a stream of 1m panes with tiers of 1h (kept 2 days)
// and 1d (kept 30 days); the base panes are kept a day.
func tierStream(t *testing.T, db *DB) StreamInfo {
	t.Helper()
	s := testSpec("tiered", time.Minute)
	s.Retention = sketchd.Duration(24 * time.Hour)
	s.Rollups = []sketchd.Rollup{
		{Granularity: sketchd.Duration(time.Hour), Retention: sketchd.Duration(48 * time.Hour)},
		{Granularity: sketchd.Duration(24 * time.Hour), Retention: sketchd.Duration(30 * 24 * time.Hour)},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	info, err := db.CreateStream(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func tierPanes(t *testing.T, db *DB, sid uint32, tier time.Duration) []string {
	t.Helper()
	var keys []string
	if err := db.TierKeys(t.Context(), sid, tier, -1<<62, 1<<62, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := db.ScanTierPanes(t.Context(), sid, tier, keys, -1<<62, 1<<62, func(p sketchd.PaneRecord) error {
		got = append(got, fmt.Sprintf("%s@%d/%d", p.Key, p.Start/int64(time.Hour), p.Events))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestTierWriteReadOverwrite(t *testing.T) {
	// The clock stands among the panes (near the epoch): reads honour
	// the base panes' one-day retention as of it.
	o := quietOptions()
	o.Now = func() time.Time { return time.Unix(0, 24*int64(time.Hour)) }
	db := openTest(t, t.TempDir(), o)
	info := tierStream(t, db)
	ctx, h := t.Context(), int64(time.Hour)
	if _, ok, err := db.TierCursor(ctx, info.ID, time.Hour); ok || err != nil {
		t.Fatalf("cursor of a new tier: %v %v", ok, err)
	}
	// The tier's space is its own: base panes at the same times are apart.
	commit(t, db, info.ID, 1, pane("a", 0, 1, blob(1, 10)), pane("a", 30*h, 1, blob(2, 10)))
	write := func(built int64, panes ...sketchd.PaneRecord) {
		t.Helper()
		if err := db.WriteTier(ctx, info.ID, time.Hour, panes, built); err != nil {
			t.Fatal(err)
		}
	}
	write(h, pane("a", 0, 5, blob(3, 10)), pane("b", 0, 6, blob(4, 10)))
	write(31*h, pane("a", 30*h, 7, blob(5, 10)))
	// Recomputed: written again whole, it replaces.
	write(31*h, pane("a", 30*h, 8, blob(6, 10)))
	if got, want := tierPanes(t, db, info.ID, time.Hour), []string{"a@0/15", "a@30/24", "b@0/18"}; !slices.Equal(got, want) {
		t.Errorf("tier panes %v, want %v", got, want)
	}
	if got := tierPanes(t, db, info.ID, 24*time.Hour); len(got) != 0 {
		t.Errorf("the 1d tier has %v", got)
	}
	if got := scanAll(t, db, info.ID, []string{"a", "b"}, -1<<62, 1<<62); len(got) != 2 {
		t.Errorf("base panes %v", got)
	}
	if c, ok, err := db.TierCursor(ctx, info.ID, time.Hour); !ok || err != nil || c != 31*h {
		t.Errorf("cursor %d %v %v, want %d", c, ok, err, 31*h)
	}
	if s, ok, err := db.FirstPaneAfter(ctx, info.ID, time.Hour, h); !ok || err != nil || s != 30*h {
		t.Errorf("first tier pane after 1h: %d %v %v, want %d", s, ok, err, 30*h)
	}
	if s, ok, err := db.FirstPaneAfter(ctx, info.ID, 0, -1<<62); !ok || err != nil || s != 0 {
		t.Errorf("first base pane: %d %v %v", s, ok, err)
	}
	if _, ok, err := db.FirstPaneAfter(ctx, info.ID, 0, 31*h); ok || err != nil {
		t.Errorf("a base pane after the last: %v %v", ok, err)
	}

	// Removing a tier drops it; deleting the stream drops the others.
	fewer := info.Spec
	fewer.Rollups = info.Spec.Rollups[1:]
	if _, err := db.AlterStream(ctx, "tiered", fewer, sketchd.Alteration{At: time.Unix(0, 0).UTC(), Changes: []string{"rollups"}}); err != nil {
		t.Fatal(err)
	}
	if got := tierPanes(t, db, info.ID, time.Hour); len(got) != 0 {
		t.Errorf("removed tier still holds %v", got)
	}
	if _, ok, _ := db.TierCursor(ctx, info.ID, time.Hour); ok {
		t.Error("removed tier still has a cursor")
	}
	write(2*h, pane("a", h, 1, blob(7, 10)))
	if err := db.WriteTier(ctx, info.ID, 24*time.Hour, []sketchd.PaneRecord{pane("a", 0, 1, blob(8, 10))}, 24*h); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteStream(ctx, "tiered"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []byte{prefixTierPane, prefixTierIndex, prefixTierCursor} {
		if n := db.countPrefix(kind, info.ID); n != 0 {
			t.Errorf("%d %q records left after DeleteStream", n, kind)
		}
	}
}

// TestTierRetention: each tier is dropped by its own retention, whole
// partitions at a time.
func TestTierRetention(t *testing.T) {
	opts := quietOptions()
	day, h := int64(24*time.Hour), int64(time.Hour)
	now := 100 * day
	opts.Now = func() time.Time { return time.Unix(0, now) }
	db := openTest(t, t.TempDir(), opts)
	info := tierStream(t, db)
	ctx := t.Context()
	for _, d := range []int64{10, 80, 97, 99} {
		commit(t, db, info.ID, uint64(d), pane("k", d*day, 1, blob(uint64(d), 8)))
		if err := db.WriteTier(ctx, info.ID, time.Hour, []sketchd.PaneRecord{pane("k", d*day, 1, blob(uint64(d), 8))}, d*day+h); err != nil {
			t.Fatal(err)
		}
		if err := db.WriteTier(ctx, info.ID, 24*time.Hour, []sketchd.PaneRecord{pane("k", d*day, 1, blob(uint64(d), 8))}, d*day+day); err != nil {
			t.Fatal(err)
		}
	}
	db.runRetention(ctx)
	// Base: a day; 1h tier: 2 days (1-day partitions); 1d tier: 30 days,
	// in partitions of 24 days (day 72 to 95 holds day 80).
	if got, want := scanAll(t, db, info.ID, []string{"k"}, -1<<62, 1<<62), []string{fmt.Sprintf("k@%d", 99*day)}; !slices.Equal(got, want) {
		t.Errorf("base panes %v, want %v", got, want)
	}
	if got, want := tierPanes(t, db, info.ID, time.Hour), []string{fmt.Sprintf("k@%d/3", 99*24)}; !slices.Equal(got, want) {
		t.Errorf("1h tier %v, want %v", got, want)
	}
	if got, want := tierPanes(t, db, info.ID, 24*time.Hour), []string{fmt.Sprintf("k@%d/3", 80*24), fmt.Sprintf("k@%d/3", 97*24), fmt.Sprintf("k@%d/3", 99*24)}; !slices.Equal(got, want) {
		t.Errorf("1d tier %v, want %v", got, want)
	}
}
