package main

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// percentileBrute is the nearest-rank definition read literally: the
// smallest x in xs with at least p% of xs ≤ x.
func percentileBrute(xs []float64, p float64) float64 {
	best := math.Inf(1)
	for _, x := range xs {
		le := 0
		for _, y := range xs {
			if y <= x {
				le++
			}
		}
		if float64(le) >= p/100*float64(len(xs))-1e-9 && x < best {
			best = x
		}
	}
	return best
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{[]float64{1}, 50, 1},
		{[]float64{3, 1, 2}, 50, 2},
		{[]float64{1, 2, 3, 4}, 50, 2},
		{[]float64{1, 2, 3, 4}, 75, 3},
		{[]float64{1, 2, 3, 4}, 76, 4},
		{[]float64{1, 2, 3, 4}, 100, 4},
		{[]float64{5, 5, 5, 1}, 10, 1},
	}
	for _, tt := range tests {
		if got := Percentile(tt.xs, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
		}
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("Percentile of nothing is not NaN")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		xs := make([]float64, 1+rng.IntN(60))
		for i := range xs {
			xs[i] = float64(rng.IntN(20))
		}
		for _, p := range []float64{1, 10, 50, 90, 99, 99.9, 100} {
			if got, want := Percentile(xs, p), percentileBrute(xs, p); got != want {
				t.Fatalf("Percentile(%v, %v) = %v, brute force %v", xs, p, got, want)
			}
		}
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(ds, 3)
	want := Latency{Requests: 100, Errors: 3, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if l != want {
		t.Errorf("Summarize = %+v, want %+v", l, want)
	}
	if l.ErrorRate() != 0.03 {
		t.Errorf("error rate %v", l.ErrorRate())
	}
	if z := Summarize(nil, 0); z.Requests != 0 || z.ErrorRate() != 0 {
		t.Errorf("empty: %+v", z)
	}
}

func TestStat(t *testing.T) {
	var s Stat
	if s.Mean() != 0 || s.Coverage() != 1 {
		t.Errorf("empty stat: mean %v coverage %v", s.Mean(), s.Coverage())
	}
	s.Add(0.5, true)
	s.Add(0.1, true)
	s.Add(2, false)
	if s.N != 3 || s.Within != 2 || s.Min != 0.1 || s.Max != 2 || math.Abs(s.Mean()-2.6/3) > 1e-12 {
		t.Errorf("stat %+v mean %v", s, s.Mean())
	}
}
