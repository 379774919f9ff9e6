package sketch_test

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// paneDigests builds a digest as a query does: values spread over panes of
// up to perPane values, each its own digest, merged with MergeAll.
func paneDigests(tb testing.TB, vals []float64, perPane int) *sketch.TDigest {
	tb.Helper()
	var panes []sketch.Sketch
	for lo := 0; lo < len(vals); lo += perPane {
		d, err := sketch.NewTDigest(100)
		if err != nil {
			tb.Fatal(err)
		}
		for _, v := range vals[lo:min(lo+perPane, len(vals))] {
			if err := d.Add(v); err != nil {
				tb.Fatal(err)
			}
		}
		panes = append(panes, d)
	}
	sum := panes[0].Clone()
	if err := sketch.MergeAll(sum, panes[1:]...); err != nil {
		tb.Fatal(err)
	}
	return sum.(*sketch.TDigest)
}

// exactRank is the fraction of sorted values ≤ x, ties by half (as CDF).
func exactRank(sorted []float64, x float64) float64 {
	below := sort.SearchFloat64s(sorted, x)
	upTo := sort.Search(len(sorted), func(i int) bool { return sorted[i] > x })
	return (float64(below) + float64(upTo-below)/2) / float64(len(sorted))
}

// rankOf is how far q is from the ranks v holds in sorted (0 when v is an
// exact q-quantile), as the load runner measures it.
func rankOf(sorted []float64, q, v float64) float64 {
	n := float64(len(sorted))
	below := float64(sort.SearchFloat64s(sorted, v)) / n
	upTo := float64(sort.Search(len(sorted), func(i int) bool { return sorted[i] > v })) / n
	switch {
	case q < below:
		return below - q
	case q > upTo:
		return q - upTo
	}
	return 0
}

// TestTDigestRankErrorCoverage: the stated rank error of quantiles and
// ranks holds in at least sketch.RankConfidence of answers, and trimmed
// means lie within their bounds as often, against exact answers over
// seeded data (latency-like: exponential and log-normal), digests merged
// from panes as queries merge them.
func TestTDigestRankErrorCoverage(t *testing.T) {
	const seed = 18
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	qs := []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999}
	trims := []float64{0, 0.01, 0.05, 0.25}
	var qN, qIn, rN, rIn, tN, tIn int
	worstQ, worstR := 0.0, 0.0
	for _, n := range []int{10, 100, 1_000, 3_000, 10_000, 30_000, 100_000} {
		for rep := 0; rep < 12; rep++ {
			vals := make([]float64, n)
			for i := range vals {
				if rep%2 == 0 {
					vals[i] = rng.ExpFloat64() * 100
				} else {
					vals[i] = math.Exp(rng.NormFloat64()) * 50
				}
			}
			perPane := max(1, n/60) // one key, 60 panes
			if rep%3 == 2 {
				perPane = 15 // many small panes (many keys, short ranges)
			}
			d := paneDigests(t, vals, perPane)
			sorted := slices.Sorted(slices.Values(vals))
			for _, q := range qs {
				e := d.Quantile(q)
				err := rankOf(sorted, q, e.Value)
				qN++
				if err <= e.RankError+1e-9 {
					qIn++
				} else {
					worstQ = max(worstQ, err-e.RankError)
				}
				x := sorted[int(q*float64(n-1))]
				r := d.Rank(x)
				rN++
				if truth := exactRank(sorted, x); truth >= r.Lower-1e-9 && truth <= r.Upper+1e-9 {
					rIn++
				} else {
					worstR = max(worstR, math.Abs(truth-r.Fraction)-r.RankError)
				}
			}
			for _, tr := range trims {
				e := d.TrimmedMean(tr, 1-tr)
				lo, hi := tr*float64(n), (1-tr)*float64(n)
				var sum, w float64
				for i, v := range sorted {
					l, r := max(float64(i), lo), min(float64(i+1), hi)
					if r > l {
						sum += v * (r - l)
						w += r - l
					}
				}
				truth := sum / w
				tN++
				if truth >= e.Lower-1e-9*math.Abs(truth) && truth <= e.Upper+1e-9*math.Abs(truth) {
					tIn++
				} else {
					t.Logf("n=%d trim=%g: trimmed mean %g outside [%g, %g] (estimate %g)", n, tr, truth, e.Lower, e.Upper, e.Value)
				}
			}
			if m, want := d.Mean(), mean(vals); want < m.Lower || want > m.Upper || math.Abs(m.Value-want) > 1e-9*want {
				t.Errorf("n=%d: mean %+v, exact %g", n, m, want)
			}
		}
	}
	t.Logf("quantiles: %d of %d within rank_error (worst excess %.5f); ranks: %d of %d (worst excess %.5f); trimmed means: %d of %d",
		qIn, qN, worstQ, rIn, rN, worstR, tIn, tN)
	for _, c := range []struct {
		name   string
		in, of int
	}{{"quantiles", qIn, qN}, {"ranks", rIn, rN}, {"trimmed means", tIn, tN}} {
		if got := float64(c.in) / float64(c.of); got < sketch.RankConfidence {
			t.Errorf("%s: %.4f within the stated error, want ≥ %g", c.name, got, sketch.RankConfidence)
		}
	}
}

// mean is the exact mean, rounded once.
func mean(v []float64) float64 {
	s := new(big.Float).SetPrec(2000)
	for _, x := range v {
		s.Add(s, big.NewFloat(x))
	}
	m, _ := s.Quo(s, big.NewFloat(float64(len(v)))).Float64()
	return m
}

// TestTDigestAnswersEmpty: an empty digest and bad cuts answer NaN, never
// a number.
func TestTDigestAnswersEmpty(t *testing.T) {
	d, _ := sketch.NewTDigest(100)
	if r := d.Rank(1); !math.IsNaN(r.Fraction) || !math.IsNaN(d.Mean().Value) || !math.IsNaN(d.TrimmedMean(0.1, 0.9).Value) {
		t.Errorf("empty: rank %+v, mean %g", r, d.Mean())
	}
	_ = d.Add(3)
	if e := d.TrimmedMean(0.6, 0.4); !math.IsNaN(e.Value) {
		t.Errorf("lo > hi: %+v", e)
	}
	if r := d.Rank(2); r.Fraction != 0 || r.RankError != 0 {
		t.Errorf("below min: %+v", r)
	}
	if e := d.TrimmedMean(0, 1); e.Value != 3 || e.Lower != 3 || e.Upper != 3 {
		t.Errorf("single value: %+v", e)
	}
}

// TestTDigestFlushKeepsAnswers: Flush moves the buffered values into the
// centroids without compressing them, so every answer (quantiles with
// their bounds, ranks, CDF, mean, trimmed means) and the count are those
// of the digest before, and its buffer is empty. Seeded; digests with a
// buffer only, centroids only, and both.
func TestTDigestFlushKeepsAnswers(t *testing.T) {
	const seed = 20261205
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, n := range []int{7, 300, 2_000, 20_000} {
		d, err := sketch.NewTDigest(100)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := d.Add(rng.ExpFloat64() * 100); err != nil {
				t.Fatal(err)
			}
		}
		_, buffered := d.Centroids()
		before := answersOf(d)
		d.Flush()
		if _, b := d.Centroids(); b != 0 {
			t.Fatalf("n=%d: %d values still buffered after Flush", n, b)
		}
		if after := answersOf(d); !slices.Equal(before, after) {
			t.Fatalf("n=%d (%d buffered): answers changed by Flush:\n%v\n%v", n, buffered, before, after)
		}
	}
}

func answersOf(d *sketch.TDigest) []float64 {
	out := []float64{float64(d.Count())}
	for _, q := range []float64{0, 0.01, 0.1, 0.5, 0.9, 0.99, 1} {
		e := d.Quantile(q)
		out = append(out, e.Value, e.Lower, e.Upper, e.RankError)
	}
	for _, x := range []float64{1, 10, 55, 100, 300} {
		r := d.Rank(x)
		out = append(out, d.CDF(x), r.Fraction, r.Lower, r.Upper)
	}
	m := d.Mean()
	tm := d.TrimmedMean(0.05, 0.95)
	return append(out, m.Value, m.Lower, m.Upper, tm.Value, tm.Lower, tm.Upper)
}
