package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// queryCounters names the counters of sketchd's query work that a phase's
// QueryWork takes the difference of: what its caches did not hold
// (decoded sketches, computed pieces), what they served, what they let go,
// and what the lanes shed. The key is the name a StoreSample keeps it by.
var queryCounters = []struct {
	key, metric string
	match       []string
}{
	{"decoded", "sketchd_query_sketches_decoded_total", nil},
	{"windows_cached", "sketchd_query_windows_cached_total", nil},
	{"edges_cached", "sketchd_query_edge_parts_cached_total", nil},
	{"pieces_cached", "sketchd_query_pieces_total", []string{"source", "cache"}},
	{"pieces_computed", "sketchd_query_pieces_total", []string{"source", "computed"}},
	{"pieces_composed", "sketchd_query_pieces_total", []string{"source", "composed"}},
	{"evicted_panes", "sketchd_query_cache_evictions_total", []string{"cache", "panes"}},
	{"evicted_windows", "sketchd_query_cache_evictions_total", []string{"cache", "windows"}},
	{"refused_tails", "sketchd_query_cache_refused_total", []string{"cache", "tails"}},
	{"admitted_heavy", "sketchd_query_lane_admitted_total", []string{"lane", "heavy"}},
	{"shed", "sketchd_query_lane_shed_total", nil},
	{"stale", "sketchd_http_stale_answers_total", nil},
	{"ahead_run", "sketchd_query_ahead_jobs_total", []string{"outcome", "run"}},
	{"ahead_dropped", "sketchd_query_ahead_jobs_total", []string{"outcome", "dropped"}},
	{"ahead_stale", "sketchd_query_ahead_jobs_total", []string{"outcome", "stale"}},
	{"ahead_entries", "sketchd_query_ahead_entries_total", nil},
	{"ahead_hits", "sketchd_query_ahead_hits_total", nil},
}

// queryGauges names the gauges of the query caches whose largest value
// over a phase its QueryWork keeps, under "max_" and the key.
var queryGauges = []struct {
	key, metric string
	match       []string
}{
	{"tails_bytes", "sketchd_query_cache_bytes", []string{"cache", "tails"}},
	{"panes_bytes", "sketchd_query_cache_bytes", []string{"cache", "panes"}},
	{"windows_bytes", "sketchd_query_cache_bytes", []string{"cache", "windows"}},
}

// queryLeast names the gauges whose smallest value over a phase its
// QueryWork keeps, in thousandths, under "min_" and the key: the share
// of their budgets the limiter let the pane and window caches keep
// (docs/operations.md, "The limiter").
var queryLeast = []struct {
	key, metric string
	match       []string
}{
	{"cache_scale", "sketchd_memory_cache_scale", nil},
}

// queryCounts reads the counters of queryCounters and the gauges of
// queryGauges and queryLeast from a scrape, nil when it has none of them
// (an older sketchd).
func queryCounts(m Metrics) map[string]float64 {
	out := map[string]float64{}
	for _, c := range slices.Concat(queryCounters, queryGauges, queryLeast) {
		if m.Has(c.metric, c.match...) {
			out[c.key] = m.Sum(c.metric, c.match...)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// QueryWork is what sketchd's queries did between a phase's first and
// last scrape, by the keys of queryCounters (a counter absent from either
// scrape is left out).
type QueryWork map[string]int64

// queryWork is the difference of the first and last scrapes' query
// counters, the largest value of each gauge of queryGauges over all of
// them (under "max_" and its key) and the smallest of each of queryLeast
// (in thousandths, under "min_" and its key); nil without two scrapes
// with figures.
func queryWork(samples []StoreSample) QueryWork {
	if len(samples) < 2 {
		return nil
	}
	first, last := samples[0].Query, samples[len(samples)-1].Query
	if first == nil || last == nil {
		return nil
	}
	w := QueryWork{}
	for _, c := range queryCounters {
		v, ok := last[c.key]
		if v0, ok0 := first[c.key]; ok && ok0 {
			w[c.key] = int64(v - v0)
		}
	}
	for _, g := range queryGauges {
		for _, s := range samples {
			if v, ok := s.Query[g.key]; ok && int64(v) >= w["max_"+g.key] {
				w["max_"+g.key] = int64(v)
			}
		}
	}
	for _, g := range queryLeast {
		for _, s := range samples {
			if v, ok := s.Query[g.key]; ok {
				milli := int64(math.Round(v * 1000))
				if old, seen := w["min_"+g.key]; !seen || milli < old {
					w["min_"+g.key] = milli
				}
			}
		}
	}
	return w
}

// queryWorkLine says in one sentence what the queries' caches did over a
// phase, "" without figures.
func queryWorkLine(w QueryWork) string {
	if len(w) == 0 {
		return ""
	}
	var parts []string
	add := func(format string, keys ...string) {
		args := make([]any, len(keys))
		for i, k := range keys {
			v, ok := w[k]
			if !ok {
				return
			}
			args[i] = thousands(v)
		}
		parts = append(parts, fmt.Sprintf(format, args...))
	}
	add("%s stored sketches decoded", "decoded")
	add("%s final windows and %s edge parts from the window cache", "windows_cached", "edges_cached")
	add("%s pieces computed, %s from the cache", "pieces_computed", "pieces_cached")
	add("%s pieces composed of narrower ones", "pieces_composed")
	add("evictions: %s panes, %s windows", "evicted_panes", "evicted_windows")
	add("%s open tails not kept", "refused_tails")
	if _, ok := w["max_tails_bytes"]; ok {
		parts = append(parts, fmt.Sprintf("the most the caches held: panes %s, windows %s, open tails %s",
			mib(w["max_panes_bytes"]), mib(w["max_windows_bytes"]), mib(w["max_tails_bytes"])))
	}
	if v, ok := w["min_cache_scale"]; ok {
		parts = append(parts, fmt.Sprintf("the least share of their budgets the limiter left the pane and window caches: %.3f (`sketchd_memory_cache_scale`)", float64(v)/1000))
	}
	add("%s computations admitted to the heavy lane", "admitted_heavy")
	add("%s shed", "shed")
	add("%s stale answers served", "stale")
	add("ahead jobs: %s run, %s dropped, %s window-cache entries computed ahead, %s of them taken", "ahead_run", "ahead_dropped", "ahead_entries", "ahead_hits")
	add("%s ahead jobs skipped as stale (the tail start moved before they ran)", "ahead_stale")
	return "The queries' work over the phase (differences of sketchd's counters between the first and the last scrape: " +
		"`sketchd_query_*`, `sketchd_http_stale_answers_total`): " + strings.Join(parts, "; ") + "."
}
