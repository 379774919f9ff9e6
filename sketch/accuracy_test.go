package sketch_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// Statistical tests on seeded data; every bound comes from the sketch's
// stated guarantee. They are deterministic (fixed seeds), so they never
// flake; -short shrinks the trial counts but keeps every assertion.

func trials(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// TestHLLAccuracy: p=14 over independent trials. RMSE must be within 10%
// of 1.04/√m (above it: sparse counts are far better), the mean relative
// error within 3 standard errors of 0 (or under RSE/10), and the 95% interval must cover the
// truth in at least 93% of trials. 1e6 uses fewer trials (each costs 1e6
// inserts, and the estimator is the same dense one as at 1e5, which has
// 100 trials); 20 trials still bound the RMSE to about ±16%.
func TestHLLAccuracy(t *testing.T) {
	const p = 14
	rse := 1.04 / math.Sqrt(1<<p)
	for _, tc := range []struct {
		n      int
		trials int
	}{
		{1_000, trials(100, 100)},
		{7_000, trials(100, 100)}, // still sparse, near the switch to dense
		{100_000, trials(100, 30)},
		{1_000_000, trials(20, 5)},
	} {
		// Trials are independent: run them on every core.
		type result struct {
			rel     float64
			covered bool
		}
		res := make([]result, tc.trials)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				var key [16]byte
				for tr := w; tr < tc.trials; tr += workers {
					h, _ := sketch.NewHLL(p)
					binary.LittleEndian.PutUint64(key[8:], uint64(tr)+uint64(tc.n)<<32)
					for i := range tc.n {
						binary.LittleEndian.PutUint64(key[:], uint64(i))
						h.InsertHash(sketch.Hash(key[:]))
					}
					e := h.Estimate()
					res[tr] = result{(e.Estimate - float64(tc.n)) / float64(tc.n), e.Lower <= float64(tc.n) && float64(tc.n) <= e.Upper}
				}
			})
		}
		wg.Wait()
		var sum, sq float64
		covered := 0
		for _, r := range res {
			sum += r.rel
			sq += r.rel * r.rel
			if r.covered {
				covered++
			}
		}
		k := float64(tc.trials)
		bias, rmse := sum/k, math.Sqrt(sq/k)
		cov := float64(covered) / k
		t.Logf("n=%d trials=%d bias=%+.4f%% rmse=%.4f%% (theory %.4f%%) coverage=%.2f", tc.n, tc.trials, 100*bias, 100*rmse, 100*rse, cov)
		if rmse > 1.1*rse {
			t.Errorf("n=%d: RMSE %.4f%% exceeds 1.1 × %.4f%%", tc.n, 100*rmse, 100*rse)
		}
		// No significant bias: within 3 standard errors, or below a tenth
		// of the RSE (the sparse counts are so precise that their tiny
		// collision bias, under one item, is "significant" yet harmless).
		if se := rmse / math.Sqrt(k); math.Abs(bias) > max(3*se, 0.1*rse) {
			t.Errorf("n=%d: bias %.4f%% exceeds 3 standard errors (%.4f%%) and RSE/10", tc.n, 100*bias, 300*se)
		}
		if cov < 0.93 {
			t.Errorf("n=%d: 95%% interval covered %.2f of trials, want ≥ 0.93", tc.n, cov)
		}
	}
}

func zipfStream(seed uint64, n int, distinct uint64) []uint64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(rng, 1.1, 1, distinct-1)
	out := make([]uint64, n)
	for i := range out {
		out[i] = z.Uint64()
	}
	return out
}

// TestCMSAccuracy: on Zipf(1.1) data the overestimate is at most ⌈εN⌉ for
// at least 1−δ of the distinct items, never negative; after merging 60
// partial sketches (one by one, or with MergeAll, which must count the
// same) the top 20 recalls all of the true top 20 (recall ≥ 0.99 over 20
// items means all of them).
func TestCMSAccuracy(t *testing.T) {
	n := trials(1_000_000, 300_000)
	vals := zipfStream(42, n, 200_000)
	truth := map[uint64]uint64{}
	items := make([][]byte, 200_000)
	for _, v := range vals {
		truth[v]++
		if items[v] == nil {
			items[v] = itemOf(v)
		}
	}
	whole, _ := sketch.NewCountMin(0.001, 0.01, 20)
	parts := make([]*sketch.CountMin, 60)
	for i := range parts {
		parts[i], _ = sketch.NewCountMin(0.001, 0.01, 20)
	}
	for i, v := range vals {
		h := sketch.Hash(items[v])
		whole.Add(h, items[v], 1)
		parts[i*60/n].Add(h, items[v], 1)
	}
	merged, _ := sketch.NewCountMin(0.001, 0.01, 20)
	for _, p := range parts {
		if err := merged.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := sketch.NewCountMin(0.001, 0.01, 20)
	srcs := make([]sketch.Sketch, len(parts))
	for i, p := range parts {
		srcs[i] = p
	}
	if err := sketch.MergeAll(all, srcs...); err != nil {
		t.Fatal(err)
	}
	// MergeAll ranks candidates once; its counts are those of repeated Merge.
	if all.Total() != merged.Total() {
		t.Fatalf("MergeAll total %d, Merge total %d", all.Total(), merged.Total())
	}
	for v := range truth {
		if a, m := all.Estimate(items[v]).Estimate, merged.Estimate(items[v]).Estimate; a != m {
			t.Fatalf("%s: MergeAll counts %d, Merge %d", items[v], a, m)
		}
	}
	for name, c := range map[string]*sketch.CountMin{"single": whole, "merged60": merged, "mergeAll60": all} {
		bad, maxOver := 0, uint64(0)
		for v, want := range truth {
			e := c.Estimate(items[v])
			if e.Estimate < want {
				t.Fatalf("%s: %s underestimated: %d < %d", name, items[v], e.Estimate, want)
			}
			if e.Lower > want || e.Upper < want {
				bad++
			}
			maxOver = max(maxOver, e.Estimate-want)
		}
		frac := float64(bad) / float64(len(truth))
		e := c.Estimate(items[0])
		t.Logf("%s: N=%d εN=%d distinct=%d outside [Lower,Upper]: %.5f (δ=%.4f) max overestimate %d", name, c.Total(), e.ErrorBound, len(truth), frac, c.Delta(), maxOver)
		if frac > c.Delta() {
			t.Errorf("%s: %.5f of items outside the bound, want ≤ δ=%.4f", name, frac, c.Delta())
		}
		// True top 20.
		type kv struct{ v, n uint64 }
		var all []kv
		for v, n := range truth {
			all = append(all, kv{v, n})
		}
		slices.SortFunc(all, func(a, b kv) int {
			if a.n != b.n {
				return int(b.n) - int(a.n)
			}
			return bytes.Compare(items[a.v], items[b.v])
		})
		top := c.TopK(20)
		hit := 0
		for _, w := range all[:20] {
			for _, g := range top {
				if bytes.Equal(g.Item, items[w.v]) {
					hit++
					break
				}
			}
		}
		recall := float64(hit) / 20
		t.Logf("%s: top-20 recall %.2f", name, recall)
		if recall < 0.99 {
			t.Errorf("%s: top-20 recall %.2f, want ≥ 0.99", name, recall)
		}
	}
}

// rankError is |midrank(x)/n − q| over sorted data.
func rankError(sorted []float64, x, q float64) float64 {
	lo, _ := slices.BinarySearch(sorted, x)
	hi := lo
	for hi < len(sorted) && sorted[hi] == x {
		hi++
	}
	r := (float64(lo) + float64(hi)) / 2 / float64(len(sorted))
	// x between two data points: its rank is where it would be inserted.
	return math.Abs(r - q)
}

// TestTDigestAccuracy: rank error ≤ 0.001 at q = 0.5, 0.9, 0.99, 0.999 on
// uniform and lognormal data, for one digest, for 60 partial digests merged
// one by one, and for the same merged with MergeAll.
func TestTDigestAccuracy(t *testing.T) {
	n := trials(1_000_000, 200_000)
	for _, dist := range []string{"uniform", "lognormal"} {
		rng := rand.New(rand.NewPCG(7, 7))
		data := make([]float64, n)
		for i := range data {
			if dist == "uniform" {
				data[i] = rng.Float64()
			} else {
				data[i] = math.Exp(1.5 * rng.NormFloat64())
			}
		}
		whole, _ := sketch.NewTDigest(100)
		parts := make([]*sketch.TDigest, 60)
		srcs := make([]sketch.Sketch, 60)
		for i := range parts {
			parts[i], _ = sketch.NewTDigest(100)
			srcs[i] = parts[i]
		}
		for i, x := range data {
			_ = whole.Add(x)
			_ = parts[i%60].Add(x)
		}
		pairwise, _ := sketch.NewTDigest(100)
		for _, p := range parts {
			if err := pairwise.Merge(p); err != nil {
				t.Fatal(err)
			}
		}
		all, _ := sketch.NewTDigest(100)
		if err := sketch.MergeAll(all, srcs...); err != nil {
			t.Fatal(err)
		}
		sorted := slices.Clone(data)
		slices.Sort(sorted)
		for name, d := range map[string]*sketch.TDigest{"single": whole, "merged60": pairwise, "mergeAll60": all} {
			c, _ := d.Centroids()
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				e := d.Quantile(q)
				re := rankError(sorted, e.Value, q)
				t.Logf("%s %s centroids=%d q=%g rank error %.2e (reported ±%.1e)", dist, name, c, q, re, e.RankError)
				if re > 0.001 {
					t.Errorf("%s %s q=%g: rank error %.2e > 0.001", dist, name, q, re)
				}
				if re > e.RankError {
					t.Errorf("%s %s q=%g: rank error %.2e outside the reported ±%.2e", dist, name, q, re, e.RankError)
				}
			}
			if d.Min() != sorted[0] || d.Max() != sorted[n-1] {
				t.Errorf("%s %s: min/max %g %g, want %g %g", dist, name, d.Min(), d.Max(), sorted[0], sorted[n-1])
			}
		}
	}
}

// checkChi2 is a χ² goodness-of-fit test at α = 0.001 of counts against
// expected(i), with len(counts)−1 degrees of freedom: it fails t with what
// when the counts are off.
func checkChi2(t *testing.T, what string, counts []float64, expected func(i int) float64) {
	t.Helper()
	var chi2 float64
	for i, c := range counts {
		e := expected(i)
		chi2 += (c - e) * (c - e) / e
	}
	df := float64(len(counts) - 1)
	crit := chi2Critical(df, 3.0902)
	t.Logf("%s: χ²=%.2f df=%.0f critical(α=0.001)=%.1f", what, chi2, df, crit)
	if chi2 > crit {
		t.Errorf("%s: χ² = %.2f > %.1f", what, chi2, crit)
	}
}

// chi2Critical is the upper α quantile of χ² with df degrees of freedom,
// by the Wilson–Hilferty approximation; z is the normal quantile of 1−α.
func chi2Critical(df, z float64) float64 {
	a := 2 / (9 * df)
	return df * math.Pow(1-a+z*math.Sqrt(a), 3)
}

// TestReservoirUniformity: bottom-k inclusion counts over the positions of
// a stream split in three unequal parts, sampled separately and merged, are
// uniform by a χ² test with df = n−1 = 999 at α = 0.001 (critical value
// ≈ 1142.7 by Wilson–Hilferty).
func TestReservoirUniformity(t *testing.T) {
	const n, k = 1000, 10
	tr := trials(10000, 5000)
	counts := make([]float64, n)
	item := make([]byte, 8)
	for trial := range tr {
		parts := [3]*sketch.Reservoir{}
		for i := range parts {
			parts[i], _ = sketch.NewReservoir(k, false)
		}
		for i := range n {
			binary.LittleEndian.PutUint64(item, uint64(i))
			part := 0
			if i >= 150 {
				part = 1
			}
			if i >= 700 {
				part = 2
			}
			parts[part].Add(splitmix64(uint64(trial)<<32|uint64(i)), item, 0)
		}
		_ = parts[2].Merge(parts[0])
		_ = parts[2].Merge(parts[1])
		if parts[2].Population() != n {
			t.Fatalf("population %d", parts[2].Population())
		}
		s := parts[2].Sample()
		if len(s) != k {
			t.Fatalf("sample of %d", len(s))
		}
		for _, it := range s {
			counts[binary.LittleEndian.Uint64(it)]++
		}
	}
	checkChi2(t, fmt.Sprintf("uniform inclusion, %d trials", tr), counts, func(int) float64 { return float64(tr) * k / n })
}

// TestReservoirWeighted: with k=1 the exponential-clock sample picks item
// i with probability w_i/Σw exactly; χ² over 10 items with weights 1..10,
// df = 9, α = 0.001 (critical ≈ 27.9).
func TestReservoirWeighted(t *testing.T) {
	const items = 10
	tr := trials(50000, 10000)
	counts := make([]float64, items)
	for trial := range tr {
		a, _ := sketch.NewReservoir(1, true)
		b, _ := sketch.NewReservoir(1, true)
		for i := range items {
			dst := a
			if i%2 == 1 {
				dst = b
			}
			dst.Add(splitmix64(uint64(trial)<<32|uint64(i)), []byte{byte(i)}, float64(i+1))
		}
		_ = a.Merge(b)
		counts[a.Sample()[0][0]]++
	}
	checkChi2(t, fmt.Sprintf("inclusion proportional to weight, %d trials, counts %v", tr, counts), counts,
		func(i int) float64 { return float64(tr) * float64(i+1) / 55 })
}

// TestTDigestMergeMany: a day of one-minute panes (1440 digests of 1 to
// 400 lognormal values, through the wire) merged with MergeAll keeps the
// rank error ≤ 0.001 and exact min/max.
func TestTDigestMergeMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	var data []float64
	srcs := make([]sketch.Sketch, 1440)
	for i := range srcs {
		d, _ := sketch.NewTDigest(100)
		for range 1 + rng.IntN(400) {
			x := math.Exp(1.5 * rng.NormFloat64())
			data = append(data, x)
			_ = d.Add(x)
		}
		b, _ := d.AppendBinary(nil)
		var err error
		if srcs[i], err = sketch.Decode(b); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := sketch.NewTDigest(100)
	if err := sketch.MergeAll(all, srcs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(data)
	if all.Count() != uint64(len(data)) || all.Min() != data[0] || all.Max() != data[len(data)-1] {
		t.Fatalf("count/min/max %d %g %g", all.Count(), all.Min(), all.Max())
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		e := all.Quantile(q)
		if re := rankError(data, e.Value, q); re > 0.001 {
			t.Errorf("q=%g: rank error %.2e > 0.001", q, re)
		}
	}
	c, _ := all.Centroids()
	t.Logf("n=%d centroids=%d", len(data), c)
}
