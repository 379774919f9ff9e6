package query

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestComposedOf: the block and its doubling are composed (from panes,
// from blocks) below the stream's first rollup tier; a tier's width, the
// widths above it and the pane are computed from the keys.
func TestComposedOf(t *testing.T) {
	m := int64(time.Minute)
	for _, c := range []struct {
		name    string
		rollups []int64
		window  int64
		want    map[int64]int64 // width -> composed of
	}{
		{"hourly and daily tiers", []int64{60 * m, 1440 * m}, 1440 * m,
			map[int64]int64{m: 0, 15 * m: m, 30 * m: 15 * m, 60 * m: 0, 120 * m: 0, 1440 * m: 0}},
		{"no tier", nil, 60 * m, map[int64]int64{m: 0, 15 * m: m, 30 * m: 15 * m}},
		{"half-hour tier", []int64{30 * m}, 120 * m, map[int64]int64{m: 0, 15 * m: m, 30 * m: 0, 60 * m: 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &plan{target: Target{Spec: sketchd.Stream{Granularity: sketchd.Duration(m)}}, geom: geometry{window: c.window}}
			for _, g := range c.rollups {
				p.target.Spec.Rollups = append(p.target.Spec.Rollups, sketchd.Rollup{Granularity: sketchd.Duration(g)})
			}
			widths := p.pieceWidths()
			for w, want := range c.want {
				if !slices.Contains(widths, w) {
					t.Fatalf("widths %v lack %v", widths, time.Duration(w))
				}
				if got := p.composedOf(widths, w); got != want {
					t.Errorf("composedOf(%v) = %v, want %v", time.Duration(w), time.Duration(got), time.Duration(want))
				}
			}
		})
	}
}

// TestQuarterMoveComposed: "the last 3 hours by hour", asked after every
// minute's commit as a dashboard does, decodes about as few stored
// sketches on a move onto a quarter hour as on any other minute but the
// hour's (whose windows are aligned, so not cut into pieces): the block a
// quarter adds at each window's end is merged from the pieces of its panes,
// which the windows' ends asked for in the minutes before, instead of from
// every key's fifteen panes (with a pane cache smaller than those panes,
// as the load runner's is). Every answer equals the reference's merge of
// all its panes.
func TestQuarterMoveComposed(t *testing.T) {
	const keys, hours = 24, 3
	l, _, _, ref := newLiveMemo(t, 20261207, keys, 3, 3, (hours+1)*60+7)
	q := New(l.db, Options{CacheBytes: 256 << 10})
	t.Cleanup(q.Close)
	q.ahead.manual = true // each move does its own work
	h := int64(time.Hour)
	var quarters, others []int64
	composed := q.Stats().ComposedPieces
	for i := range 50 {
		l.ingest(t)
		to := l.now()
		before := q.Stats().Decoded
		for _, agg := range []string{"users", "latency"} {
			qu := Query{Aggregate: agg, From: to - hours*h, To: to, Step: h}
			sameAsReference(t, fmt.Sprintf("minute %d %s", l.minute, agg), q, ref, l.target, qu)
		}
		d := q.Stats().Decoded - before
		switch {
		case i < 16: // the caches fill
		case l.minute%60 == 0: // aligned windows
		case l.minute%15 == 0:
			quarters = append(quarters, d)
		case l.minute%15 != 1:
			others = append(others, d)
		}
	}
	if len(quarters) == 0 || len(others) == 0 {
		t.Fatalf("no quarter (%v) or other minute (%v) measured", quarters, others)
	}
	slices.Sort(others)
	median := others[len(others)/2]
	t.Logf("decoded on quarter moves %v, on the other minutes' median %d; %d pieces composed", quarters, median, q.Stats().ComposedPieces-composed)
	for _, d := range quarters {
		if d > 3*median+keys {
			t.Errorf("a quarter move decoded %d sketches, the other minutes %d (median)", d, median)
		}
	}
}
