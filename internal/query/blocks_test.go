package query

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/sketch"
)

// TestQueryBlocksMatchPanes checks the rollup-block path against a querier
// without cache (every pane read, decoded and merged one by one): same
// windows, events and panes, the same HLL estimate, CMS counts and
// reservoir sample, and t-digest quantiles within the digest's rank error;
// on the cold query that builds the blocks and on the hot ones that read
// them from the cache, with the watermark in the middle of the data so that
// some blocks are not final, and for query geometries where blocks fit or
// do not fit the windows.
func TestQueryBlocksMatchPanes(t *testing.T) {
	spec := panetest.Spec(t)
	f := newFeeder(t, spec)
	rng := rand.New(rand.NewPCG(3, 4))
	countries, devices := []string{"DE", "FR", "US"}, []string{"ios", "web"}
	var pos uint64
	for i := range 6000 {
		at := t0.Add(time.Duration(i) * 2 * time.Second) // 200 minutes
		if rng.IntN(10) == 0 {
			continue // leave some panes of some keys empty
		}
		pos++
		e := panetest.Event(sketchd.EncodeKey(countries[rng.IntN(3)], devices[rng.IntN(2)]), at, pos, fmt.Sprint("u", rng.IntN(500)))
		e.Values[0].Num = rng.ExpFloat64() * 100
		f.process(t, at, pos, e)
	}
	f.flush(t)
	// Final up to about minute 120 of 200.
	tgt := Target{ID: 1, Spec: spec, Watermark: t0.Add(121 * time.Minute).UnixNano()}
	plain := New(f.st, Options{CacheBytes: -1})
	cachedQ := New(f.st, Options{})

	from := t0.Add(-7 * time.Minute).UnixNano()
	to := t0.Add(203 * time.Minute).UnixNano()
	m := int64(time.Minute)
	geoms := []struct {
		name         string
		from, to     int64
		step, window int64
		where        map[string][]string
		groupBy      []string
	}{
		{name: "whole", from: from, to: to},
		{name: "whole aligned", from: t0.UnixNano(), to: t0.Add(180 * time.Minute).UnixNano()},
		{name: "tumbling 15m", from: from, to: to, step: 15 * m},
		{name: "tumbling 60m by device", from: from, to: to, step: 60 * m, groupBy: []string{"device"}},
		{name: "tumbling 5m", from: from, to: to, step: 5 * m},
		{name: "sliding 45m every 15m", from: from, to: to, step: 15 * m, window: 45 * m},
		{name: "sliding 30m every 10m where DE,US", from: from, to: to, step: 10 * m, window: 30 * m, where: map[string][]string{"country": {"DE", "US"}}},
	}
	ctx := context.Background()
	for _, g := range geoms {
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			t.Run(g.name+"/"+agg, func(t *testing.T) {
				qu := Query{Aggregate: agg, From: g.from, To: g.to, Step: g.step, Window: g.window, Where: g.where, GroupBy: g.groupBy}
				want, err := plain.Query(ctx, tgt, qu)
				if err != nil {
					t.Fatal(err)
				}
				var firstPass [][]byte // encoded sketches of the cold query
				for pass := range 3 {
					seen := 0
					got, err := cachedQ.Query(ctx, tgt, qu)
					if err != nil {
						t.Fatal(err)
					}
					if got.Panes != want.Panes || got.Keys != want.Keys || len(got.Groups) != len(want.Groups) {
						t.Fatalf("pass %d: panes %d keys %d groups %d, want %d %d %d", pass, got.Panes, got.Keys, len(got.Groups), want.Panes, want.Keys, len(want.Groups))
					}
					for gi := range want.Groups {
						for wi, ww := range want.Groups[gi].Windows {
							gw := got.Groups[gi].Windows[wi]
							at := fmt.Sprintf("pass %d group %v window %s", pass, want.Groups[gi].Key, time.Unix(0, ww.Start).UTC().Format("15:04"))
							if gw.Start != ww.Start || gw.End != ww.End || gw.Final != ww.Final || gw.Events != ww.Events || gw.Panes != ww.Panes {
								t.Fatalf("%s: got %d..%d final %v events %d panes %d, want %d..%d %v %d %d", at,
									gw.Start, gw.End, gw.Final, gw.Events, gw.Panes, ww.Start, ww.End, ww.Final, ww.Events, ww.Panes)
							}
							sameAnswer(t, at, gw.Sketch, ww.Sketch)
							// What the cache holds never changes a result:
							// the hot queries equal the cold one byte for byte.
							blob, err := gw.Sketch.AppendBinary(nil)
							if err != nil {
								t.Fatal(err)
							}
							if pass == 0 {
								firstPass = append(firstPass, blob)
							} else if !bytes.Equal(blob, firstPass[seen]) {
								t.Fatalf("%s: result differs from the cold query's", at)
							}
							seen++
						}
					}
				}
			})
		}
	}
}

// TestBlockStandsForPanes checks the rule that lets a rollup block stand
// for its panes against its definition: every pane of the block is final,
// and every window holds all of the block's panes or none, one holding
// them all. Window bounds come from the geometry's from, step and window
// alone (not from windowsOf), for every block around the range of
// whole-range, tumbling and sliding geometries, aligned or not, under
// watermarks before, inside and after the data. geometry.blocks must list
// exactly the blocks the rule accepts.
func TestBlockStandsForPanes(t *testing.T) {
	spec := panetest.Spec(t) // one-minute panes, a minute of allowed lateness
	m := int64(time.Minute)
	at := func(hhmm int64) int64 { return t0.UnixNano() + hhmm*m } // minutes after 10:00 (a block start)

	named := []struct {
		name         string
		from, to     int64 // minutes after 10:00
		step, window int64 // minutes
		block, wm    int64 // minutes after 10:00
		want         bool
	}{
		{"whole range, final", 0, 120, 0, 0, 15, 200, true},
		{"whole range, block within lateness", 0, 120, 0, 0, 15, 30, false},
		{"whole range, block final at once", 0, 120, 0, 0, 15, 31, true},
		{"whole range, block before from", 7, 120, 0, 0, 0, 200, false},
		{"whole range, block past to", 0, 20, 0, 0, 15, 200, false},
		{"tumbling 15m", 0, 120, 15, 0, 15, 200, true},
		{"tumbling 60m", 0, 120, 60, 0, 45, 200, true},
		{"tumbling 5m", 0, 120, 5, 0, 15, 200, false},
		{"tumbling 15m off the blocks", 5, 120, 15, 0, 15, 200, false},
		{"sliding 45m every 15m", 0, 120, 15, 45, 30, 200, true},
		{"sliding 30m every 10m", 0, 120, 10, 30, 30, 200, false},
	}
	for _, tt := range named {
		t.Run(tt.name, func(t *testing.T) {
			g, err := newGeometry(&spec, Query{From: at(tt.from), To: at(tt.to), Step: tt.step * m, Window: tt.window * m}, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.blockStandsForPanes(&spec, at(tt.block), at(tt.wm)); got != tt.want {
				t.Fatalf("block at +%dm, watermark +%dm: %v, want %v", tt.block, tt.wm, got, tt.want)
			}
		})
	}

	// The rule against its definition.
	bw := blockPanes * m
	var yes, no int
	for _, from := range []int64{-7, 0, 5, 15} {
		for _, step := range []int64{0, 1, 5, 10, 15, 30, 45, 60} {
			for _, widen := range []int64{1, 2, 3, 4} {
				if step == 0 && widen > 1 {
					continue
				}
				qu := Query{From: at(from), To: at(from + 200), Step: step * m, Window: step * widen * m}
				g, err := newGeometry(&spec, qu, 10_000)
				if err != nil {
					t.Fatal(err)
				}
				for _, wm := range []int64{math.MinInt64, at(-1), at(100), at(121), at(1000)} {
					var want []int64
					for bs := floorDiv(g.scanFrom(), bw)*bw - bw; bs <= g.to+bw; bs += bw {
						final, holdsAll, split := true, false, false
						for j := range blockPanes {
							final = final && spec.PaneFinalAt(bs+int64(j)*m, wm)
						}
						for i := range g.n {
							end := g.from + int64(i+1)*g.step
							start := end - g.window
							n := 0
							for j := range blockPanes {
								if p := bs + int64(j)*m; p >= start && p < end {
									n++
								}
							}
							holdsAll = holdsAll || n == blockPanes
							split = split || (n > 0 && n < blockPanes)
						}
						def := final && holdsAll && !split
						if got := g.blockStandsForPanes(&spec, bs, wm); got != def {
							t.Fatalf("%+v watermark %d, block %d: rule says %v, definition %v (final %v, one window holds all %v, split %v)",
								qu, wm, bs, got, def, final, holdsAll, split)
						}
						if def {
							want = append(want, bs)
							yes++
						} else {
							no++
						}
					}
					if got := g.blocks(&spec, wm); !slices.Equal(got, want) {
						t.Fatalf("%+v watermark %d: blocks %v, want %v", qu, wm, got, want)
					}
				}
			}
		}
	}
	if yes == 0 || no == 0 {
		t.Fatalf("%d blocks stand for their panes, %d do not: the cases test nothing", yes, no)
	}
	t.Logf("%d blocks stand for their panes, %d do not", yes, no)
}

// TestQueryBlocksWithoutGroupBy: a stream without group_by has one key, the
// empty tuple "", and its final blocks count like any other key's (they
// were once dropped from the result and cached as empty). Every window's
// event count is exact: 60 events a minute.
func TestQueryBlocksWithoutGroupBy(t *testing.T) {
	spec := panetest.Spec(t)
	spec.GroupBy = nil
	f := newFeeder(t, spec)
	var pos uint64
	for i := range 120 * 60 {
		at := t0.Add(time.Duration(i) * time.Second)
		pos++
		f.process(t, at, pos, panetest.Event(sketchd.EncodeKey(), at, pos, fmt.Sprint("u", i%100)))
	}
	f.flush(t)
	tgt := Target{ID: 1, Spec: spec, Watermark: t0.Add(121 * time.Minute).UnixNano()}
	q := New(f.st, Options{})
	m := int64(time.Minute)
	for pass := range 2 { // cold, then from the cached blocks
		for _, step := range []int64{0, 15 * m, 60 * m} {
			res, err := q.Query(context.Background(), tgt, Query{Aggregate: "users", From: t0.UnixNano(), To: t0.Add(120 * time.Minute).UnixNano(), Step: step})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range res.Groups[0].Windows {
				if want := uint64((w.End - w.Start) / m * 60); w.Events != want || w.Sketch.Count() != want {
					t.Fatalf("pass %d step %v window %d: %d events, sketch count %d, want %d", pass, time.Duration(step), w.Start, w.Events, w.Sketch.Count(), want)
				}
			}
		}
	}
}

// sameAnswer compares what a user would read from two merges of the same
// panes in different orders.
func sameAnswer(t *testing.T, at string, got, want sketch.Sketch) {
	t.Helper()
	if got.Count() != want.Count() {
		t.Fatalf("%s: count %d, want %d", at, got.Count(), want.Count())
	}
	switch w := want.(type) {
	case *sketch.HLL:
		if g, w := got.(*sketch.HLL).Estimate().Estimate, w.Estimate().Estimate; g != w {
			t.Fatalf("%s: distinct %v, want %v", at, g, w)
		}
	case *sketch.CountMin:
		for i := range 500 {
			item := fmt.Appendf(nil, "/u%d", i)
			if g, w := got.(*sketch.CountMin).Estimate(item).Estimate, w.Estimate(item).Estimate; g != w {
				t.Fatalf("%s: %s counted %d, want %d", at, item, g, w)
			}
		}
	case *sketch.TDigest:
		g := got.(*sketch.TDigest)
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
			gq, wq := g.Quantile(q), w.Quantile(q)
			// Both are within the digest's rank error of the truth, so of
			// each other within twice that, plus one value for small counts.
			tol := 2*wq.RankError + 1/float64(max(w.Count(), 1))
			if r := w.CDF(gq.Value); math.Abs(r-q) > tol+1e-9 && w.Count() > 20 {
				t.Fatalf("%s: q%v = %v has rank %v in the plain merge (tolerance %v)", at, q, gq.Value, r, tol)
			}
		}
	case *sketch.Reservoir:
		gs, ws := got.(*sketch.Reservoir).Sample(), w.Sample()
		if !slices.EqualFunc(gs, ws, bytes.Equal) {
			t.Fatalf("%s: sample %q, want %q", at, gs, ws)
		}
	default:
		t.Fatalf("unexpected sketch %T", want)
	}
}
