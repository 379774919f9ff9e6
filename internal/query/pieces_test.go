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
			got, err := q.Query(t.Context(), l.target, qu)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			want, err := ref.Query(t.Context(), l.target, qu)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			sameResult(t, at, got, want)
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
