package query

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the querier's work and its caches to Prometheus: what
// the caches hold and let go, and how much of the answers they served,
// so an operator can tell a cache too small for the dashboards it serves
// (evictions climbing with the decoded sketches) from one that fits.
func (q *Querier) Collector() prometheus.Collector { return collector{q} }

type collector struct{ q *Querier }

var (
	descDecoded = prometheus.NewDesc("sketchd_query_sketches_decoded_total",
		"Stored sketches (panes, rollup blocks, tier panes) decoded by queries: what the caches did not hold.", nil, nil)
	descWinHits = prometheus.NewDesc("sketchd_query_windows_cached_total",
		"Final windows of answers taken whole from the window cache.", nil, nil)
	descEdgeHits = prometheus.NewDesc("sketchd_query_edge_parts_cached_total",
		"Final parts of edge windows (holding final panes and the open tail's first) taken from the window cache.", nil, nil)
	descPieces = prometheus.NewDesc("sketchd_query_pieces_total",
		"Aligned pieces of windows not starting on a multiple of their width, by source: cache, computed (from the keys' panes, blocks or tier panes) or composed (merged from their narrower pieces: a block from its panes').", []string{"source"}, nil)
	descAheadJobs = prometheus.NewDesc("sketchd_query_ahead_jobs_total",
		"Jobs computing a minute ahead what questions anchored at now take from the window cache after the watermark moves, by outcome: run, dropped (queue full), stale (the tail start had moved on), failed.", []string{"outcome"}, nil)
	descAheadEntries = prometheus.NewDesc("sketchd_query_ahead_entries_total",
		"Window cache entries (final windows, edge prefixes) ahead jobs computed.", nil, nil)
	descAheadHits = prometheus.NewDesc("sketchd_query_ahead_hits_total",
		"Window cache entries ahead jobs computed that a question then took.", nil, nil)
	descCacheBytes = prometheus.NewDesc("sketchd_query_cache_bytes",
		"Bytes a query cache holds (estimated): panes (decoded final panes and blocks), windows (final windows, edge parts and pieces), tails (open tails of recent commits).", []string{"cache"}, nil)
	descCacheBudget = prometheus.NewDesc("sketchd_query_cache_budget_bytes",
		"Bytes a query cache may hold now: its share of --memory-limit, less while the memory limiter has the caches give way (sketchd_memory_cache_scale).", []string{"cache"}, nil)
	descCacheEntries = prometheus.NewDesc("sketchd_query_cache_entries",
		"Entries a query cache holds.", []string{"cache"}, nil)
	descCacheEvicted = prometheus.NewDesc("sketchd_query_cache_evictions_total",
		"Entries a query cache evicted to stay within its budget.", []string{"cache"}, nil)
	descCacheRefused = prometheus.NewDesc("sketchd_query_cache_refused_total",
		"Entries a query cache did not keep: larger than an eighth of its budget (panes, windows), or past its budget (tails: read again by the next question).", []string{"cache"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDecoded, descWinHits, descEdgeHits, descPieces, descAheadJobs, descAheadEntries, descAheadHits,
		descCacheBytes, descCacheBudget, descCacheEntries, descCacheEvicted, descCacheRefused} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	q := c.q
	st := q.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(descDecoded, st.Decoded)
	counter(descWinHits, st.CachedWindows)
	counter(descEdgeHits, st.CachedEdges)
	counter(descPieces, st.CachedPieces, "cache")
	counter(descPieces, st.ComputedPieces, "computed")
	counter(descPieces, st.ComposedPieces, "composed")
	counter(descAheadJobs, st.AheadJobs.Run, "run")
	counter(descAheadJobs, st.AheadJobs.Dropped, "dropped")
	counter(descAheadJobs, st.AheadJobs.Stale, "stale")
	counter(descAheadJobs, st.AheadJobs.Failed, "failed")
	counter(descAheadEntries, st.AheadEntries)
	counter(descAheadHits, st.AheadHits)
	for _, l := range []struct {
		name string
		s    lruStats
	}{{"panes", q.cache.stats()}, {"windows", q.wins.stats()}} {
		gauge(descCacheBytes, l.s.bytes, l.name)
		gauge(descCacheBudget, max(l.s.max, 0), l.name)
		gauge(descCacheEntries, l.s.entries, l.name)
		counter(descCacheEvicted, l.s.evicted, l.name)
		counter(descCacheRefused, l.s.refused, l.name)
	}
	bytes, refused := q.tails.stats()
	gauge(descCacheBytes, bytes, "tails")
	counter(descCacheRefused, refused, "tails")
}
