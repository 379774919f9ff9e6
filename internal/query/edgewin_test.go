package query

import (
	"fmt"
	"testing"
	"time"
)

// TestEdgeWindowEqualsWhole: the edge window of a tumbling series (the one
// holding final panes and the open tail's first) is merged from its final
// part, computed once per tailFrom and kept, and its open part (a
// t-digest's final part at a finer compression). Over a
// live stream with commits within each minute (late events into the open
// panes, the watermark unmoved) and commits that move it, every answer
// equals that of a querier without any cache (which merges the window
// whole; t-digests within their rank error), and a question asked again
// after a commit within the minute takes the final part from the cache
// and reads only open panes from the store.
func TestEdgeWindowEqualsWhole(t *testing.T) {
	l, reads, q, ref := newLiveMemo(t, 20261207, 12, 3, 3, 40)
	m := int64(time.Minute)
	ask := func(at string, qu Query) {
		t.Helper()
		sameAsReference(t, at, q, ref, l.target, qu)
	}
	for round := range 4 {
		l.ingest(t) // the watermark moves: a new edge
		to := l.now()
		hour := (to - 30*m) / (15 * m) * (15 * m) // aligned: the last window straddles the edge
		var questions []Query
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			questions = append(questions,
				Query{Aggregate: agg, From: to - 30*m, To: to},
				Query{Aggregate: agg, From: hour, To: to, Step: 15 * m, GroupBy: []string{"country"}},
				Query{Aggregate: agg, From: to - 30*m, To: to, Where: map[string][]string{"country": {"FR"}}})
		}
		for i, qu := range questions {
			ask(fmt.Sprintf("round %d question %d (%s)", round, i, qu.Aggregate), qu)
		}
		split := len(questions) // every kind, the t-digest at a finer compression
		for c := range 3 {      // commits within the minute
			l.ingestOpen(t)
			tailFrom, _ := (&plan{target: l.target}).tailFrom()
			reads.tailReads(tailFrom)
			before, finalBefore := q.Stats().CachedEdges, reads.n.Load()
			for i, qu := range questions {
				ask(fmt.Sprintf("round %d commit %d question %d (%s)", round, c, i, qu.Aggregate), qu)
			}
			tail := 0
			for _, n := range reads.tailReads(tailFrom) {
				tail += n
			}
			// The first time a series is asked its first window is not the edge
			// (the window cache was empty): its edge is cut from the next
			// question on.
			if hits := q.Stats().CachedEdges - before; hits != int64(split) && (round > 0 || c > 0) {
				t.Fatalf("round %d commit %d: %d edge windows from the cache, want %d", round, c, hits, split)
			}
			if n := reads.n.Load() - finalBefore; n != int64(tail) && (round > 0 || c > 0) {
				t.Fatalf("round %d commit %d: %d panes read from the store, %d of them open: a final pane was read again", round, c, n, tail)
			}
		}
	}
}

// sameAsReference asks qu of q and of ref (a querier without caches) and
// checks the answers are the same (sameResult).
func sameAsReference(t *testing.T, at string, q, ref *Querier, target Target, qu Query) {
	t.Helper()
	got, err := q.Query(t.Context(), target, qu)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	want, err := ref.Query(t.Context(), target, qu)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	sameResult(t, at, got, want)
}
