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
// through the whole handler at a fixed rate of 1,000 requests/s (open
// loop, as vegeta: each request on its own goroutine at its due time),
// with a commit every second (the stream's last commit moves, which
// changes every answer's key). The server has 8 query slots and a 1 s
// queue wait. It reports the latency percentiles and the requests refused
// (503) or failed per request; ns/op is the run's wall time per request
// (1 ms when it keeps up).
//
//	go test ./internal/api -run '^$' -bench MixWhileCommitting -benchtime 5000x
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
	commit := func() {
		f.streams.mu.Lock()
		st := f.streams.streams[f.status.Spec.Name]
		st.LastCommit = st.LastCommit.Add(time.Second)
		f.streams.streams[st.Spec.Name] = st
		f.streams.mu.Unlock()
	}
	const rate = 1000 // requests per second; a commit every rate requests
	lat := make([]time.Duration, b.N)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		if i%rate == 0 {
			commit()
		}
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodGet, mix[i%len(mix)], nil)
			rec := httptest.NewRecorder()
			t := time.Now()
			f.h.ServeHTTP(rec, req)
			lat[i] = time.Since(t)
			if rec.Code != http.StatusOK {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/op")
}

// BenchmarkAnswerAfterCommit measures one question of the mix asked right
// after a commit (nothing of it in the answer or result caches; final
// windows in the window cache): the work every commit costs per distinct
// question.
//
//	go test ./internal/api -run '^$' -bench AnswerAfterCommit -benchmem
func BenchmarkAnswerAfterCommit(b *testing.B) {
	f := newFixture(b)
	for _, c := range []struct{ name, q string }{
		{"30m/step=5m", aggPath + "latency?" + rangeQuery(subFrom, subTo) + "&step=5m"},
		{"2h/step=1m/group_by=country", aggPath + "users?" + rangeQuery(t0, t0.Add(fixtureSpan)) + "&step=1m&group_by=country"},
		{"2h/step=1m/group_by=device/urls", aggPath + "urls?" + rangeQuery(t0, t0.Add(fixtureSpan)) + "&step=1m&group_by=device"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, c.q, nil)
			b.ReportAllocs()
			for b.Loop() {
				f.streams.mu.Lock()
				st := f.streams.streams[f.status.Spec.Name]
				st.LastCommit = st.LastCommit.Add(time.Second)
				f.streams.streams[st.Spec.Name] = st
				f.streams.mu.Unlock()
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
