package query

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// TestPiecesEqualWhole: series whose windows do not start on a multiple of
// their width (the last hour at 5- and 15-minute steps, anchored at a from
// that moves a minute at a time) are merged from aligned pieces, each
// computed once and kept. Over a live stream whose watermark moves a
// minute per round, every answer equals that of a querier without any
// cache, which merges each window whole (t-digests within their rank
// error); from the second round on every question takes pieces from the
// cache and computes at most two new ones (the minute that turned final,
// in its final windows and in its edge window's final part).
func TestPiecesEqualWhole(t *testing.T) {
	l, _, q, ref := newLiveMemo(t, 20261205, 12, 3, 3, 50)
	m := int64(time.Minute)
	for round := range 6 {
		l.ingest(t)
		for (l.now()-45*m)%(5*m) == 0 { // an aligned series is not cut
			l.ingest(t)
		}
		to := l.now()
		var questions []Query
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			questions = append(questions,
				Query{Aggregate: agg, From: to - 45*m, To: to, Step: 5 * m},
				Query{Aggregate: agg, From: to - 45*m, To: to, Step: 15 * m, GroupBy: []string{"country"}},
				Query{Aggregate: agg, From: to - 45*m, To: to, Where: map[string][]string{"country": {"FR"}}})
		}
		before := q.Stats()
		for i, qu := range questions {
			at := fmt.Sprintf("round %d question %d (%s step %v)", round, i, qu.Aggregate, time.Duration(qu.Step))
			sameAsReference(t, at, q, ref, l.target, qu)
		}
		after := q.Stats()
		cached, computed := after.CachedPieces-before.CachedPieces, after.ComputedPieces-before.ComputedPieces
		t.Logf("round %d: %d pieces from the cache, %d computed", round, cached, computed)
		if round == 0 {
			if computed == 0 {
				t.Fatal("round 0: no piece computed: the series were not cut into pieces")
			}
			continue
		}
		if cached < int64(len(questions)) {
			t.Errorf("round %d: %d pieces from the cache for %d questions", round, cached, len(questions))
		}
		if computed > 2*int64(len(questions)) {
			t.Errorf("round %d: %d pieces computed for %d questions, want at most 2 each", round, computed, len(questions))
		}
	}
}

// TestCutPieces: the pieces of a range tile it, each aligned to its own
// width; a day's window at an unaligned minute is single panes at its
// ends and one or two pieces of each doubling width (pieceWidths'), the
// same window a pane later keeps its wide pieces, and a quarter hour
// later all but one of them. (An hour later most are new: the 8-hour
// unit from entered comes back cut finer, TestPiecesMoveReads.)
func TestCutPieces(t *testing.T) {
	m := int64(time.Minute)
	h, d := 60*m, 24*60*m
	ws := doublings([]int64{m, 15 * m, h, d}, 15*m, d)
	if fmt.Sprint(ws) != fmt.Sprint([]int64{m, 15 * m, 30 * m, h, 2 * h, 4 * h, 8 * h, d}) {
		t.Fatalf("doublings = %v", ws)
	}
	day := int64(20_000) * d
	check := func(from, to int64) []piece {
		t.Helper()
		ps := cutPieces(ws, from, to)
		cur := from
		for _, p := range ps {
			if p.start != cur || p.width <= 0 || p.width%m != 0 || !slices.Contains(ws, p.width) {
				t.Fatalf("[%d, %d): piece %+v after %d", from, to, p, cur)
			}
			if floorDiv(p.start, p.width)*p.width != p.start {
				t.Fatalf("[%d, %d): piece %+v not aligned to its width", from, to, p)
			}
			cur += p.width
		}
		if cur != to {
			t.Fatalf("[%d, %d): pieces end at %d", from, to, cur)
		}
		return ps
	}
	wide := func(ps []piece) map[piece]bool {
		out := map[piece]bool{}
		for _, p := range ps {
			if p.width > m {
				out[p] = true
			}
		}
		return out
	}
	a := day + 7*h + 7*m
	ps := check(a, a+d)
	want := []int64{15 * m, 30 * m, 8 * h, 8 * h, 4 * h, 2 * h, h}
	var got []int64
	for _, p := range ps {
		if p.width > m {
			got = append(got, p.width)
		}
	}
	if len(ps) != 8+len(want)+7 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("a day from 07:07: %d pieces %v, want 8 panes, widths %v, 7 panes", len(ps), ps, want)
	}
	if next := check(a+m, a+m+d); fmt.Sprint(wide(ps)) != fmt.Sprint(wide(next)) {
		t.Errorf("a pane later the wide pieces changed: %v -> %v", wide(ps), wide(next))
	}
	newWide := func(later int64) (int, map[piece]bool) {
		moved := wide(check(a+later, a+later+d))
		n := 0
		for p := range moved {
			if !wide(ps)[p] {
				n++
			}
		}
		return n, moved
	}
	if n, moved := newWide(15 * m); n > 1 {
		t.Errorf("a quarter hour later %d of the %d wide pieces are new, want at most 1: %v -> %v", n, len(moved), wide(ps), moved)
	}

	for _, r := range [][2]int64{{day, day + d}, {day + 3*m, day + 4*m}, {day + 59*m, day + 61*m}, {day - 2*h - m, day + 30*d}} {
		check(r[0], r[1])
	}
	// Past the widest width the doublings stop at half the window, and
	// before the int64 overflows (a window of all time).
	if got := doublings([]int64{m, 15 * m}, 15*m, h); fmt.Sprint(got) != fmt.Sprint([]int64{m, 15 * m, 30 * m}) {
		t.Errorf("doublings for an hour's window = %v", got)
	}
	for _, w := range doublings([]int64{m, 15 * m}, 15*m, math.MaxInt64) {
		if w <= 0 {
			t.Fatalf("doublings for a window of all time: width %d", w)
		}
	}
}

// TestPiecesMoveReads compares what the load runner's moving series read
// per key and minute with units of doubling widths (cutPieces) and with
// one stretch per width as a single piece (cutStretches, the cut before
// 2026-12-07): a day at an hour's step (24 windows) and 30 days at a day's
// (30 windows), from anchored at now, moving a minute at a time for two
// days. A piece is read when it was never cut before (a window cache that
// keeps every piece: the best case of either), at one read per pane, per
// tier hour or per tier day (blocks are not cached, as in the runner); an
// aligned window is read whole from the tier. Units must read no more
// than stretches, on average and at the worst minute; the figures are in
// docs/operations.md ("Quarter-hour recomputes").
func TestPiecesMoveReads(t *testing.T) {
	m := int64(time.Minute)
	h, d := 60*m, 24*60*m
	widths := []int64{m, 15 * m, h, d}
	reads := func(p piece) int64 { // per key
		for _, w := range []int64{d, h, m} {
			if p.width%w == 0 && p.start%w == 0 {
				return p.width / w
			}
		}
		return 0
	}
	day := int64(20_000) * d
	type cost struct{ avg, max float64 }
	run := func(window, n int64, cut func(from, to int64) []piece) cost {
		seen := map[piece]bool{}
		step := func(from int64) (r int64) {
			for k := range n {
				f := from + k*window
				if f%window == 0 {
					r += window / h // an aligned window: its tier panes
					continue
				}
				for _, p := range cut(f, f+window) {
					if !seen[p] {
						r += reads(p)
						seen[p] = true
					}
				}
			}
			return r
		}
		step(day + 7*m)
		const moves = 48 * 60
		var c cost
		for i := range int64(moves) {
			r := float64(step(day + 7*m + (i+1)*m))
			c.avg += r / moves
			c.max = max(c.max, r)
		}
		return c
	}
	for _, s := range []struct {
		name      string
		window, n int64
	}{{"a day by hour", h, 24}, {"30 days by day", d, 30}} {
		units := run(s.window, s.n, func(f, to int64) []piece { return cutPieces(doublings(widths, 15*m, s.window), f, to) })
		stretches := run(s.window, s.n, func(f, to int64) []piece { return cutStretches(widths, f, to) })
		t.Logf("%s: reads per key and minute, units avg %.1f max %.0f, stretches avg %.1f max %.0f", s.name, units.avg, units.max, stretches.avg, stretches.max)
		if units.avg > stretches.avg || units.max > stretches.max {
			t.Errorf("%s: units read more than stretches: %+v against %+v", s.name, units, stretches)
		}
	}
}

// cutStretches is cutPieces as it was before 2026-12-07: each width's
// stretch [ceil_W(from), floor_W(to)) one piece.
func cutStretches(widths []int64, from, to int64) []piece {
	for i := len(widths) - 1; i >= 1; i-- {
		w := widths[i]
		if lo, hi := ceilDiv(from, w)*w, floorDiv(to, w)*w; lo < hi {
			out := append(cutStretches(widths[:i], from, lo), piece{lo, hi - lo})
			return append(out, cutStretches(widths[:i], hi, to)...)
		}
	}
	var out []piece
	for cur := from; cur < to; cur += widths[0] {
		out = append(out, piece{cur, widths[0]})
	}
	return out
}
