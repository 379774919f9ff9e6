package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMixWhileCommitting sends a mix of 36 distinct questions (3
// aggregates × 3 group_by × 2 steps × 2 ranges, as a dashboard asks them)
// from 32 concurrent clients through the whole handler, with a commit
// (the stream's last commit moves, which changes every answer's key)
// every 200 requests: 1,000 req/s with a commit each second, at the
// handler's own speed. The server has the default 8 query slots on 2
// cores and a 1 s queue wait. It reports the latency percentiles and the
// requests refused (503) or failed per request.
//
//	go test ./internal/api -run '^$' -bench MixWhileCommitting -benchtime 20000x
func BenchmarkMixWhileCommitting(b *testing.B) {
	f := newFixture(b, func(c *Config) {
		c.Limits.MaxConcurrent = 8
		c.Limits.QueueWait = time.Second
	})
	var mix []string
	for _, agg := range []string{"users", "latency", "urls"} {
		for _, gb := range []string{"", "&group_by=country", "&group_by=device"} {
			for _, step := range []string{"&step=1m", "&step=5m"} {
				for _, rq := range []string{rangeQuery(subFrom, subTo), rangeQuery(t0, t0.Add(fixtureSpan))} {
					mix = append(mix, aggPath+agg+"?"+rq+gb+step)
				}
			}
		}
	}
	var (
		next, failed atomic.Int64
		mu           sync.Mutex
		lat          []time.Duration
	)
	commit := func() {
		f.streams.mu.Lock()
		st := f.streams.streams[f.status.Spec.Name]
		st.LastCommit = st.LastCommit.Add(time.Second)
		f.streams.streams[st.Spec.Name] = st
		f.streams.mu.Unlock()
	}
	b.SetParallelism(16) // 32 clients on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := next.Add(1)
			if i%200 == 0 {
				commit()
			}
			req := httptest.NewRequest(http.MethodGet, mix[int(i)%len(mix)], nil)
			rec := httptest.NewRecorder()
			start := time.Now()
			f.h.ServeHTTP(rec, req)
			mine = append(mine, time.Since(start))
			if rec.Code != http.StatusOK {
				failed.Add(1)
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(failed.Load())/float64(len(lat)), "failed/op")
}
