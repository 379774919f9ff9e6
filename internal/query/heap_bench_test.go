package query

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/defaults"
)

// BenchmarkDashboardAtMemoryLimit is BenchmarkDashboardWhileIngesting's
// shared dashboard (real Aggregator and Badger, 60 keys of 1 to 20 events
// a minute: small panes, where an entry's own heap is most of it) with the
// process's memory limit set to 96 MiB and the caches sized from it as
// sketchd sizes them (defaults.SplitMemory), so that they fill and evict
// as at load. Besides time and allocations it reports the live heap after
// the run (live-MB: after a collection; the Badger memtables and the
// stream's aggregator are part of it), the bytes the caches account
// (cached-MB: pane, window and result caches) and the GC cycles per
// refresh (gc/op): with a live heap near half the limit, the collector
// runs at the limit; and the panes decoded per refresh (decoded/op: the
// caches' misses).
//
//	go test ./internal/query -run '^$' -bench DashboardAtMemoryLimit -benchmem
func BenchmarkDashboardAtMemoryLimit(b *testing.B) {
	const limit = 96 << 20
	l := newLive(b, 1, 60)
	for range 90 {
		l.ingest(b)
	}
	split := defaults.SplitMemory(limit)
	q := New(l.db, Options{CacheBytes: split.QueryCache, WindowCacheBytes: split.WindowCache, ResultBytes: split.ResultCache,
		TotalQueryBytes: split.QueriesTotal, MaxQueryBytes: split.QueryMax})
	m := int64(time.Minute)
	refresh := func() {
		to := l.now()
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			for _, qu := range []Query{
				{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}},
				{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"device"}},
				{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
				{Aggregate: agg, From: to - 60*m, To: to},
			} {
				if _, err := q.QueryShared(b.Context(), l.target, qu); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(limit))
	refresh()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0, d0 := ms.NumGC, q.Stats().Decoded
	timeAfterCommits(b, l, refresh)
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	gcs := ms.NumGC - gc0
	runtime.GC()
	runtime.ReadMemStats(&ms)
	cached := q.cache.stats().bytes + q.wins.stats().bytes
	if q.results != nil {
		q.results.mu.Lock()
		cached += q.results.bytes
		q.results.mu.Unlock()
	}
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MB")
	b.ReportMetric(float64(cached)/(1<<20), "cached-MB")
	b.ReportMetric(float64(gcs)/float64(b.N), "gc/op")
	b.ReportMetric(float64(q.Stats().Decoded-d0)/float64(b.N), "decoded/op")
}
