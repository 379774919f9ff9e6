package query

import (
	"fmt"
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

// TestCutPieces: the pieces of a range tile it, each aligned to the width
// it was cut at; a day's window at an unaligned minute is one 23-hour
// piece, one 45-minute piece and single panes at its ends, and the same
// window a pane later keeps its wide pieces.
func TestCutPieces(t *testing.T) {
	m := int64(time.Minute)
	h, d := 60*m, 24*60*m
	ws := []int64{m, 15 * m, h, d}
	day := int64(20_000) * d
	check := func(from, to int64) []piece {
		t.Helper()
		ps := cutPieces(ws, from, to)
		cur := from
		for _, p := range ps {
			if p.start != cur || p.width <= 0 || p.width%m != 0 {
				t.Fatalf("[%d, %d): piece %+v after %d", from, to, p, cur)
			}
			if p.width > m && floorDiv(p.start, 15*m)*15*m != p.start {
				t.Fatalf("[%d, %d): wide piece %+v not aligned", from, to, p)
			}
			cur += p.width
		}
		if cur != to {
			t.Fatalf("[%d, %d): pieces end at %d", from, to, cur)
		}
		return ps
	}
	a := day + 7*h + 7*m
	ps := check(a, a+d)
	if len(ps) != 17 {
		t.Errorf("a day from 07:07: %d pieces %v, want 8 panes, 45m, 23h, 7 panes", len(ps), ps)
	}
	next := check(a+m, a+m+d)
	wide := func(ps []piece) (out []piece) {
		for _, p := range ps {
			if p.width > m {
				out = append(out, p)
			}
		}
		return out
	}
	if fmt.Sprint(wide(ps)) != fmt.Sprint(wide(next)) {
		t.Errorf("a pane later the wide pieces changed: %v -> %v", wide(ps), wide(next))
	}
	for _, r := range [][2]int64{{day, day + d}, {day + 3*m, day + 4*m}, {day + 59*m, day + 61*m}, {day - 2*h - m, day + 30*d}} {
		check(r[0], r[1])
	}
}
