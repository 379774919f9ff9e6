package main

import (
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestServerLatency feeds sketchd's histogram (same name, labels and
// buckets as internal/api) through a real Prometheus handler and reads the
// latency of what was observed between two scrapes.
func TestServerLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sketchd_http_request_duration_seconds",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"route", "method"})
	reg.MustRegister(h)
	scrape := func() Metrics {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		m, err := ParseMetrics(strings.NewReader(rec.Body.String()))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	observe := func(route string, seconds float64, n int) {
		for range n {
			h.WithLabelValues(route, "GET").Observe(seconds)
		}
	}
	observe("/v1/streams/{stream}/aggregates/{aggregate}", 5, 10) // before the phase
	first := httpBuckets(scrape())
	observe("/v1/streams/{stream}/aggregates/{aggregate}", 0.0003, 90) // ≤ 0.5 ms
	observe("/v1/streams/{stream}", 0.0007, 8)                         // ≤ 1 ms
	observe("/v1/streams/{stream}/aggregates/{aggregate}", 0.003, 1)   // ≤ 4 ms
	observe("/v1/streams/{stream}/query", 0.020, 1)                    // ≤ 32 ms
	observe("/metrics", 0.1, 50)                                       // not a /v1 route
	last := httpBuckets(scrape())

	got := serverLatency(first, last)
	want := &ServerLatency{Requests: 100, P50: 0.5, P99: 4}
	if got == nil || *got != *want {
		t.Fatalf("serverLatency = %+v, want %+v", got, want)
	}
	if line := serverLatencyLine(got); !strings.Contains(line, "100 requests, p50 ≤ 0.5 ms, p99 ≤ 4 ms") {
		t.Errorf("line: %s", line)
	}

	observe("/v1/streams/{stream}/query", 40, 100) // past the last bound (16.384 s)
	slow := serverLatency(last, httpBuckets(scrape()))
	if slow == nil || slow.Requests != 100 || !math.IsInf(slow.P99, 1) {
		t.Errorf("past the last bucket: %+v", slow)
	}
	if line := serverLatencyLine(slow); !strings.Contains(line, "p99 past the last bucket") {
		t.Errorf("line: %s", line)
	}

	for _, c := range []struct {
		name        string
		first, last map[string]float64
	}{
		{"no first scrape", nil, last},
		{"no last scrape", first, nil},
		{"nothing between", last, last},
		{"no +Inf bucket", map[string]float64{"0.001": 1}, map[string]float64{"0.001": 5}},
		{"bad bound", map[string]float64{"x": 1}, map[string]float64{"x": 5, "+Inf": 5}},
	} {
		if got := serverLatency(c.first, c.last); got != nil {
			t.Errorf("%s: %+v, want nil", c.name, got)
		}
	}
	if httpBuckets(Metrics{{Name: "other"}}) != nil {
		t.Error("httpBuckets of a scrape without the histogram is not nil")
	}
}

// TestTimelineServerLatency: BuildTimeline takes the latency between its
// first and last samples, and the report prints it.
func TestTimelineServerLatency(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	samples := []StoreSample{
		{At: t0, HTTP: map[string]float64{"0.001": 10, "0.002": 10, "+Inf": 10}},
		{At: t0.Add(time.Second), HTTP: map[string]float64{"0.001": 20, "0.002": 30, "+Inf": 30}},
		{At: t0.Add(2 * time.Second), HTTP: map[string]float64{"0.001": 50, "0.002": 109, "+Inf": 110}},
	}
	tl := BuildTimeline(samples, 0, nil, false)
	want := ServerLatency{Requests: 100, P50: 2, P99: 2}
	if tl.Server == nil || *tl.Server != want {
		t.Fatalf("Server = %+v, want %+v", tl.Server, want)
	}
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "k6", Rate: 1000, Timeline: tl})
	if !strings.Contains(b.String(), "100 requests, p50 ≤ 2 ms, p99 ≤ 2 ms") {
		t.Errorf("report:\n%s", b.String())
	}
	if tl := BuildTimeline(samples[:1], 0, nil, false); tl.Server != nil {
		t.Errorf("one sample: Server = %+v, want nil", tl.Server)
	}
}
