package query

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestQueryMetrics: the querier's collector reports what its questions
// did, on a registry as /metrics serves it: pieces computed, then taken
// from the cache; windows and sketches decoded; the window cache's bytes,
// and its evictions when its budget is smaller than what a dashboard
// asks.
func TestQueryMetrics(t *testing.T) {
	l, _, _, _ := newLiveMemo(t, 20261209, 6, 3, 3, 40)
	m := int64(time.Minute)
	for _, c := range []struct {
		name    string
		opts    Options
		evicted bool
	}{
		{"fits", Options{}, false},
		{"small window cache", Options{WindowCacheBytes: 64 << 10}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := New(l.db, c.opts)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(q.Collector())
			ask := func() {
				to := l.now()
				for _, agg := range []string{"users", "urls", "latency"} {
					for _, step := range []int64{5 * m, 15 * m} {
						if _, err := q.Query(t.Context(), l.target, Query{Aggregate: agg, From: to - 37*m, To: to, Step: step}); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			ask()
			l.ingest(t)
			ask()
			get := func(series string) float64 {
				t.Helper()
				return promtest.Value(t, reg, series)
			}
			if n := get(`sketchd_query_pieces_total{source="computed"}`); n == 0 {
				t.Error("no piece computed")
			}
			if n := get(`sketchd_query_pieces_total{source="cache"}`); n == 0 && !c.evicted {
				t.Error("no piece from the cache after the minute moved")
			}
			if n := get("sketchd_query_sketches_decoded_total"); n == 0 {
				t.Error("no sketch decoded")
			}
			if n := get(`sketchd_query_cache_bytes{cache="windows"}`); n <= 0 || n > float64(max(c.opts.WindowCacheBytes, 64<<20)) {
				t.Errorf("window cache holds %v bytes", n)
			}
			if n := get(`sketchd_query_cache_evictions_total{cache="windows"}`); (n > 0) != c.evicted {
				t.Errorf("%v window cache evictions, want some: %v", n, c.evicted)
			}
			if n := get(`sketchd_query_cache_bytes{cache="tails"}`); n <= 0 {
				t.Errorf("tail memo holds %v bytes", n)
			}
			if problems, err := testutil.CollectAndLint(q.Collector()); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %v", problems, err)
			}
			if n, err := testutil.GatherAndCount(reg); err != nil || n < 10 {
				t.Errorf("%d metrics gathered (%v)", n, err)
			}
		})
	}
}
