package query

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestScaleCaches: real questions fill the pane and window caches; scaled
// to a quarter, each holds at most a quarter of its budget at once (its
// least recently used entries evicted) and keeps no more while the same
// questions are asked again (no result cache: they are answered from the
// caches and the store), whose answers do not change; scaled back to 1,
// the caches fill again with other questions' panes. /metrics shows each cache's budget now.
func TestScaleCaches(t *testing.T) {
	l, _, _, _ := newLiveMemo(t, 20261207, 6, 3, 3, 90)
	m := int64(time.Minute)
	const paneBudget, winBudget = 64 << 10, 32 << 10
	q := New(l.db, Options{CacheBytes: paneBudget, WindowCacheBytes: winBudget, ResultEntries: -1})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(q.Collector())
	to := l.now()
	ask := func(steps ...int64) []*Result {
		var out []*Result
		for _, agg := range []string{"users", "urls", "latency"} {
			for _, step := range steps {
				r, err := q.Query(t.Context(), l.target, Query{Aggregate: agg, From: to - 90*m, To: to - 10*m, Step: step})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, r)
			}
		}
		return out
	}
	want := ask(m, 5*m)
	held, budget := q.CacheBytes()
	if budget != paneBudget+winBudget {
		t.Fatalf("budget %d, want %d", budget, paneBudget+winBudget)
	}
	panes, wins := q.cache.stats().bytes, q.wins.stats().bytes
	t.Logf("caches filled: panes %d of %d bytes, windows %d of %d", panes, paneBudget, wins, winBudget)
	if panes < paneBudget/2 || wins < winBudget/4 || held != panes+wins {
		t.Fatalf("the questions filled the caches to %d (panes) and %d (windows) bytes, held %d: too little to scale", panes, wins, held)
	}
	q.ScaleCaches(0.25)
	check := func(when string) {
		t.Helper()
		if b := q.cache.stats().bytes; b > paneBudget/4 {
			t.Errorf("%s: pane cache holds %d bytes, over a quarter of %d", when, b, paneBudget)
		}
		if b := q.wins.stats().bytes; b > winBudget/4 {
			t.Errorf("%s: window cache holds %d bytes, over a quarter of %d", when, b, winBudget)
		}
		if v := promtest.Value(t, reg, `sketchd_query_cache_budget_bytes{cache="panes"}`); v != paneBudget/4 {
			t.Errorf("%s: pane cache budget on /metrics %v, want %d", when, v, paneBudget/4)
		}
	}
	check("scaled")
	for i, r := range ask(m, 5*m) {
		sameResult(t, fmt.Sprintf("question %d with the caches scaled down", i), r, want[i])
	}
	check("asked again")
	q.ScaleCaches(1)
	ask(2*m, 10*m)
	if b := q.cache.stats().bytes; b <= paneBudget/4 {
		t.Errorf("pane cache holds %d bytes after scaling back to 1 and asking again", b)
	}
	if v := promtest.Value(t, reg, `sketchd_query_cache_budget_bytes{cache="windows"}`); v != winBudget {
		t.Errorf("window cache budget on /metrics %v after scaling back, want %d", v, winBudget)
	}
}
