package main

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p ≤ 100) of xs by the
// nearest-rank method: the smallest x with at least p% of xs ≤ x. xs need
// not be sorted; it is not modified. NaN for no values.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	return percentileSorted(s, p)
}

func percentileSorted(s []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(0, min(len(s)-1, rank-1))]
}

// Latency summarizes request latencies.
type Latency struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Mean     float64 `json:"mean_ms"`
	Rate     float64 `json:"rate"` // requests per second sent
}

// ErrorRate returns Errors/Requests (0 without requests).
func (l Latency) ErrorRate() float64 {
	if l.Requests == 0 {
		return 0
	}
	return float64(l.Errors) / float64(l.Requests)
}

// Summarize returns the latency summary of durations (all requests) and
// the count of errors among them.
func Summarize(ds []time.Duration, errors int) Latency {
	l := Latency{Requests: len(ds), Errors: errors}
	if len(ds) == 0 {
		return l
	}
	ms := make([]float64, len(ds))
	sum := 0.0
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	l.P50, l.P90, l.P99 = percentileSorted(ms, 50), percentileSorted(ms, 90), percentileSorted(ms, 99)
	l.Max, l.Mean = ms[len(ms)-1], sum/float64(len(ms))
	return l
}

// Stat accumulates a non-negative error measure: count, mean, max, and how
// many were within their bound.
type Stat struct {
	N      int     `json:"n"`
	Within int     `json:"within"`
	Sum    float64 `json:"sum"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Add records one error value and whether it was within its bound.
func (s *Stat) Add(v float64, within bool) {
	if s.N == 0 || v < s.Min {
		s.Min = v
	}
	s.N++
	s.Sum += v
	s.Max = max(s.Max, v)
	if within {
		s.Within++
	}
}

// Mean returns the mean error (0 when empty).
func (s Stat) Mean() float64 {
	if s.N == 0 {
		return 0
	}
	return s.Sum / float64(s.N)
}

// Coverage returns the fraction within bound (1 when empty).
func (s Stat) Coverage() float64 {
	if s.N == 0 {
		return 1
	}
	return float64(s.Within) / float64(s.N)
}
