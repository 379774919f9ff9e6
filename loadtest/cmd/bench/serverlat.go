package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ServerLatency is a phase's latency as sketchd measured it: the /v1
// requests its histogram sketchd_http_request_duration_seconds counted
// between the phase's first and last scrape. The histogram times the
// handler (from net/http handing it the read request to the response
// written): beside a load tool's figures, the difference is the time a
// request waited to be read and its response to be read back, sketchd's
// scheduling and the tool's own on the same two cores.
// The buckets double from 0.5 ms, so a quantile is known only as the
// upper bound of the bucket that holds it.
type ServerLatency struct {
	Requests int64   `json:"requests"`
	P50      float64 `json:"p50_le_ms"` // math.Inf(1) past the last bound
	P99      float64 `json:"p99_le_ms"`
}

// httpBuckets returns the cumulative counts of sketchd's request-latency
// histogram over the /v1 routes, by bucket bound (seconds; "+Inf" as
// math.Inf), or nil when the scrape has none.
func httpBuckets(m Metrics) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.Name == "sketchd_http_request_duration_seconds_bucket" && strings.HasPrefix(s.Labels["route"], "/v1") {
			out[s.Labels["le"]] += s.Value
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// serverLatency is the latency of the requests counted between two
// scrapes' histograms, nil without both or without requests between them.
func serverLatency(first, last map[string]float64) *ServerLatency {
	if first == nil || last == nil {
		return nil
	}
	type bucket struct{ le, n float64 }
	var bs []bucket
	for le, n := range last {
		b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			return nil
		}
		bs = append(bs, bucket{b, n - first[le]})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	total := bs[len(bs)-1].n
	if !math.IsInf(bs[len(bs)-1].le, 1) || total <= 0 {
		return nil
	}
	at := func(q float64) float64 {
		rank := math.Ceil(q * total)
		for _, b := range bs {
			if b.n >= rank {
				return b.le * 1000
			}
		}
		return math.Inf(1)
	}
	return &ServerLatency{Requests: int64(total), P50: at(0.50), P99: at(0.99)}
}

// serverLatencyLine is the report's line on a phase's ServerLatency.
func serverLatencyLine(s *ServerLatency) string {
	bound := func(ms float64) string {
		if math.IsInf(ms, 1) {
			return "past the last bucket"
		}
		return fmt.Sprintf("≤ %s ms", strconv.FormatFloat(ms, 'f', -1, 64))
	}
	return fmt.Sprintf("sketchd's handler time of the /v1 requests it served between the first and the last scrape "+
		"(its histogram `sketchd_http_request_duration_seconds`: from its HTTP server handing it the read request to the "+
		"response written, so without the wait before sketchd reads a request, nor the tool's own; buckets doubling from "+
		"0.5 ms, so each figure is a bucket's upper bound): %s requests, p50 %s, p99 %s.", thousands(s.Requests), bound(s.P50), bound(s.P99))
}
