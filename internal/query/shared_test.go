package query

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sketchd/sketchd/sketch"
)

// TestQuerySharedWhileCommitting: over a stream being ingested (seeded;
// real Aggregator, real Badger, a commit per minute), QueryShared answers
// equal those of a querier without caches, hand out the window cache's
// own sketches for final windows (the same sketch to two callers, where
// Query hands out copies), and readers on several goroutines reading every
// answer at once do not race (run with -race).
func TestQuerySharedWhileCommitting(t *testing.T) {
	const seed = 20261207
	t.Logf("seed %d", seed)
	l := newLive(t, seed, 12)
	q := New(l.db, Options{})
	plain := New(l.db, Options{CacheBytes: -1, ResultEntries: -1, WindowCacheBytes: -1})
	m := int64(time.Minute)
	for range 20 {
		l.ingest(t)
	}
	for round := range 6 {
		l.ingest(t)
		to := l.now()
		for _, qc := range []Query{
			{From: to - 30*m, To: to, Step: m, GroupBy: []string{"country"}},
			{From: to - 30*m, To: to, Step: 5 * m, GroupBy: []string{"device"}},
			{From: to - 30*m, To: to, Step: m, Where: map[string][]string{"country": {"DE"}}},
		} {
			for _, agg := range []string{"users", "urls", "latency", "sample"} {
				qu := qc
				qu.Aggregate = agg
				at := fmt.Sprintf("round %d step %v %v %s", round, time.Duration(qu.Step), qu.GroupBy, agg)
				const readers = 4
				got := make([]*Result, readers)
				errs := make([]error, readers)
				var wg sync.WaitGroup
				for i := range readers {
					wg.Go(func() {
						got[i], errs[i] = q.QueryShared(t.Context(), l.target, qu)
						if errs[i] == nil {
							readAll(got[i])
						}
					})
				}
				wg.Wait()
				want, err := plain.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatal(err)
				}
				for i := range readers {
					if errs[i] != nil {
						t.Fatalf("%s: %v", at, errs[i])
					}
					sameResult(t, at, got[i], want)
				}
				// The readers above cached the final windows (the one that
				// computed a window reads its own sketch; the cache keeps a
				// copy): now two callers get the cache's.
				again, err := q.QueryShared(t.Context(), l.target, qu)
				if err != nil {
					t.Fatal(err)
				}
				again2, err := q.QueryShared(t.Context(), l.target, qu)
				if err != nil {
					t.Fatal(err)
				}
				copied, err := q.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatal(err)
				}
				i := slices.IndexFunc(again.Groups[0].Windows, func(w Window) bool { return w.Final && w.Events > 0 })
				if i < 0 {
					t.Fatalf("%s: no final window with events", at)
				}
				wi := func(r *Result) sketch.Sketch { return r.Groups[0].Windows[i].Sketch }
				if wi(again) != wi(again2) {
					t.Fatalf("%s: window %d: two QueryShared callers got two sketches, want the cache's own", at, i)
				}
				if wi(copied) == wi(again) {
					t.Fatalf("%s: window %d: Query handed out the cache's own sketch, want a copy", at, i)
				}
			}
		}
	}
}

// readAll reads every window's answer as the API renders it.
func readAll(r *Result) {
	for _, g := range r.Groups {
		for _, w := range g.Windows {
			switch s := w.Sketch.(type) {
			case *sketch.HLL:
				s.Estimate()
			case *sketch.CountMin:
				s.TopK(5)
				s.Estimate([]byte("/u1"))
			case *sketch.TDigest:
				s.Quantile(0.5)
				s.Quantile(0.99)
			case *sketch.Reservoir:
				s.Sample()
			}
		}
	}
}
