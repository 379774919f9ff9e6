package store

import (
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestRetainedFrom: the first pane start each retention keeps as of the
// store's clock, for the base panes (where their reads start) and for
// each rollup tier by its own retention and granularity; none for a tier
// the stream does not have, an unknown stream, or a retention of 0.
func TestRetainedFrom(t *testing.T) {
	o := quietOptions()
	day, h, m := int64(24*time.Hour), int64(time.Hour), int64(time.Minute)
	now := 100*day + 5*h + 30*m + 7*int64(time.Second)
	o.Now = func() time.Time { return time.Unix(0, now) }
	db := openTest(t, t.TempDir(), o)
	info := tierStream(t, db)                // base 1m kept 1d; tiers 1h kept 2d, 1d kept 30d
	base := now - day - 7*int64(time.Second) // the 1m pane holding now - 1d
	for _, c := range []struct {
		tier time.Duration
		want int64
	}{
		{0, base},
		{time.Hour, 98*day + 5*h},            // the 1h pane holding now - 2d
		{24 * time.Hour, 70 * day},           // the 1d pane holding now - 30d
		{2 * time.Hour, sketchd.NoTime},      // no such tier
		{time.Minute, sketchd.NoTime},        // nor one of the base granularity
		{-time.Hour, sketchd.NoTime},         // nor a negative one
		{time.Hour * 24 * 7, sketchd.NoTime}, // nor a coarser one
	} {
		if got := db.RetainedFrom(info.ID, c.tier); got != c.want {
			t.Errorf("RetainedFrom(tier %s) = %d, want %d", c.tier, got, c.want)
		}
	}
	if got := db.UpdateFrom(info.ID); got != db.RetainedFrom(info.ID, 0) {
		t.Errorf("UpdateFrom %d, RetainedFrom %d: imports and reads disagree", got, db.RetainedFrom(info.ID, 0))
	}
	if got := db.RetainedFrom(info.ID+100, 0); got != sketchd.NoTime {
		t.Errorf("an unknown stream: %d", got)
	}
	keep := testSpec("forever", time.Minute)
	keep.Retention = 0
	kept, err := db.CreateStream(t.Context(), keep)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.RetainedFrom(kept.ID, 0); got != sketchd.NoTime {
		t.Errorf("a stream kept forever: %d", got)
	}
}

// TestTierVersion: the count of a stream's tier cursor changes moves
// after each write of a cursor (not of tier panes alone), each import
// into a stream with tiers, each alter of one, and ResetTiers; other
// streams' counts stay.
func TestTierVersion(t *testing.T) {
	o := quietOptions()
	h := int64(time.Hour)
	o.Now = func() time.Time { return time.Unix(0, 24*h) }
	db := openTest(t, t.TempDir(), o)
	info := tierStream(t, db)
	other := testSpec("plain", time.Minute)
	plain, err := db.CreateStream(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	commit(t, db, info.ID, 1, pane("a", 20*h, 1, blob(1, 10)))
	v := db.TierVersion(info.ID)
	step := func(what string, moves bool, f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := db.TierVersion(info.ID)
		if moved := got != v; moved != moves {
			t.Errorf("%s: version %d -> %d, want moved %t", what, v, got, moves)
		}
		v = got
		if n := db.TierVersion(plain.ID); n != 0 {
			t.Errorf("%s: another stream's version is %d", what, n)
		}
	}
	step("tier panes without a cursor", false, func() error {
		return db.WriteTierPanes(ctx, info.ID, time.Hour, []sketchd.PaneRecord{pane("a", 20*h, 1, blob(2, 10))})
	})
	step("the cursor built further", true, func() error {
		return db.WriteTier(ctx, info.ID, time.Hour, []sketchd.PaneRecord{pane("a", 20*h, 1, blob(2, 10))}, 21*h)
	})
	step("an import (its tier pane rewound)", true, func() error {
		_, err := db.UpdatePane(ctx, info.ID, "a", 20*h, Import{ID: "imp-1", Aggregate: "users", Count: 1}, func(p *sketchd.PaneRecord, _ bool) error {
			p.Events++
			return nil
		})
		return err
	})
	step("an alter", true, func() error {
		_, err := db.AlterStream(ctx, "tiered", info.Spec, sketchd.Alteration{At: time.Unix(0, 0).UTC(), Changes: []string{"retention"}})
		return err
	})
	step("ResetTiers", true, func() error { return db.ResetTiers(ctx, info.ID) })
}
