package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestQueryWork: a phase's query work is the difference of its first and
// last scrapes' counters, read from sketchd's metrics text, and the
// report says it.
func TestQueryWork(t *testing.T) {
	scrape := func(decoded, computed, cached, evicted, shedCheap, shedHeavy, tails int, scale float64) map[string]float64 {
		text := fmt.Sprintf(`sketchd_query_sketches_decoded_total %d
sketchd_query_pieces_total{source="computed"} %d
sketchd_query_pieces_total{source="cache"} %d
sketchd_query_pieces_total{source="composed"} %d
sketchd_query_cache_evictions_total{cache="panes"} 3
sketchd_query_cache_evictions_total{cache="windows"} %d
sketchd_query_lane_shed_total{lane="cheap"} %d
sketchd_query_lane_shed_total{lane="heavy"} %d
sketchd_query_cache_bytes{cache="panes"} 1048576
sketchd_query_cache_bytes{cache="windows"} 2097152
sketchd_query_cache_bytes{cache="tails"} %d
sketchd_memory_cache_scale %g
`, decoded, computed, cached, cached/10, evicted, shedCheap, shedHeavy, tails, scale)
		m, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return queryCounts(m)
	}
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	samples := []StoreSample{
		{At: t0, Query: scrape(100, 10, 20, 5, 1, 2, 1<<20, 1)},
		{At: t0.Add(time.Second), Query: scrape(150, 12, 30, 5, 1, 2, 3<<20, 0.375)},
		{At: t0.Add(2 * time.Second), Query: scrape(1100, 40, 520, 9, 2, 6, 2<<20, 0.5)},
	}
	tl := BuildTimeline(samples, 0, nil, false)
	want := QueryWork{"decoded": 1000, "pieces_computed": 30, "pieces_cached": 500, "pieces_composed": 50, "evicted_panes": 0, "evicted_windows": 4, "shed": 5,
		"max_panes_bytes": 1 << 20, "max_windows_bytes": 2 << 20, "max_tails_bytes": 3 << 20, "min_cache_scale": 375}
	if fmt.Sprint(tl.Work) != fmt.Sprint(want) {
		t.Fatalf("Work = %v, want %v", tl.Work, want)
	}
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "k6", Rate: 1000, Timeline: tl})
	for _, s := range []string{"1,000 stored sketches decoded", "30 pieces computed, 500 from the cache", "50 pieces composed of narrower ones", "evictions: 0 panes, 4 windows", "5 shed",
		"the most the caches held: panes 1.0 MiB, windows 2.0 MiB, open tails 3.0 MiB",
		"the least share of their budgets the limiter left the pane and window caches: 0.375"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, b.String())
		}
	}
	if strings.Contains(b.String(), "stale answers") {
		t.Errorf("report names a counter no scrape had:\n%s", b.String())
	}
	if queryCounts(Metrics{{Name: "other"}}) != nil || queryWork(samples[:1]) != nil {
		t.Error("a scrape without the counters gives figures")
	}
}

// TestQueryWorkAhead: the ahead jobs' counters are differenced and named
// when sketchd has them.
func TestQueryWorkAhead(t *testing.T) {
	scrape := func(run, dropped, stale, entries, hits int) map[string]float64 {
		text := fmt.Sprintf(`sketchd_query_sketches_decoded_total 1
sketchd_query_ahead_jobs_total{outcome="run"} %d
sketchd_query_ahead_jobs_total{outcome="dropped"} %d
sketchd_query_ahead_jobs_total{outcome="stale"} %d
sketchd_query_ahead_entries_total %d
sketchd_query_ahead_hits_total %d
`, run, dropped, stale, entries, hits)
		m, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return queryCounts(m)
	}
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	tl := BuildTimeline([]StoreSample{{At: t0, Query: scrape(10, 1, 7, 100, 50)}, {At: t0.Add(time.Second), Query: scrape(210, 3, 12, 2100, 1550)}}, 0, nil, false)
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "k6", Rate: 1000, Timeline: tl})
	for _, want := range []string{"ahead jobs: 200 run, 2 dropped, 2,000 window-cache entries computed ahead, 1,500 of them taken",
		"5 ahead jobs skipped as stale"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
