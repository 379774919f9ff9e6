package sketch_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	caio "github.com/caio/go-tdigest/v4"
	"github.com/sketchd/sketchd/sketch"
)

// rankOf is the fraction of sorted below or at v (the empirical CDF).
func exchangeRankOf(sorted []float64, v float64) float64 {
	return float64(sort.SearchFloat64s(sorted, math.Nextafter(v, math.Inf(1)))) / float64(len(sorted))
}

var exchangeQs = []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999}

// exchangeData: seeded lognormal and uniform values.
func exchangeData(dist string, seed uint64, n int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0xca10))
	xs := make([]float64, n)
	for i := range xs {
		if dist == "lognormal" {
			xs[i] = math.Exp(1.5 * rng.NormFloat64())
		} else {
			xs[i] = 1000 * rng.Float64()
		}
	}
	return xs
}

// TestTDigestDifferential feeds the same seeded data to sketchd's digest
// and to github.com/caio/go-tdigest (the reference, same compression 100)
// and checks, at every quantile q, that each answer's rank in the exact
// data is within b(q) = RankError(q) + 2e-3·√(q(1−q)) + 1/N of q (the
// digest's stated rank error, and the t-digest's size bound for the
// reference, whose centroids hold at most 4Nq(1−q)/δ values, so its
// interpolation errs by a fraction of that: 2e-3 at the median for δ =
// 100 is a quarter of it), and so that the two agree within 2·b(q).
func TestTDigestDifferential(t *testing.T) {
	const delta = 100
	for _, dist := range []string{"lognormal", "uniform"} {
		seed := uint64(len(dist))
		n := trials(200_000, 50_000)
		t.Run(dist, func(t *testing.T) {
			t.Logf("seed %d, n %d", seed, n)
			xs := exchangeData(dist, seed, n)
			ours, _ := sketch.NewTDigest(delta)
			ref, err := caio.New(caio.Compression(delta), caio.LocalRandomNumberGenerator(int64(seed)))
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range xs {
				if err := ours.Add(x); err != nil {
					t.Fatal(err)
				}
				if err := ref.Add(x); err != nil {
					t.Fatal(err)
				}
			}
			sorted := slices.Sorted(slices.Values(xs))
			worst := 0.0
			for _, q := range exchangeQs {
				e := ours.Quantile(q)
				ro, rr := exchangeRankOf(sorted, e.Value), exchangeRankOf(sorted, ref.Quantile(q))
				bound := e.RankError + 2e-3*math.Sqrt(q*(1-q)) + 1/float64(n)
				worst = max(worst, math.Abs(ro-q)/bound, math.Abs(rr-q)/bound)
				if math.Abs(ro-q) > bound {
					t.Errorf("q=%g: sketchd's value %g has rank %.6f, beyond %.6f of q", q, e.Value, ro, bound)
				}
				if math.Abs(rr-q) > bound {
					t.Errorf("q=%g: caio's value %g has rank %.6f, beyond %.6f of q", q, ref.Quantile(q), rr, bound)
				}
				if math.Abs(ro-rr) > 2*bound {
					t.Errorf("q=%g: ranks %.6f (sketchd) and %.6f (caio) differ by more than %.6f", q, ro, rr, 2*bound)
				}
			}
			t.Logf("largest rank error of either digest: %.2f of b(q)", worst)
		})
	}
}

// TestTDigestExchangeRoundTrip: a digest exported in the exchange format
// reads back with caio.FromBytes, and a caio digest's AsBytes imports into
// sketchd; the quantiles survive both ways within the rank bounds above,
// counts exactly.
func TestTDigestExchangeRoundTrip(t *testing.T) {
	xs := exchangeData("lognormal", 7, 100_000)
	sorted := slices.Sorted(slices.Values(xs))
	ours, _ := sketch.NewTDigest(100)
	ref, _ := caio.New(caio.Compression(100), caio.LocalRandomNumberGenerator(7))
	for _, x := range xs {
		_ = ours.Add(x)
		_ = ref.Add(x)
	}
	check := func(name string, count uint64, quantile func(float64) float64) {
		t.Helper()
		if count != uint64(len(xs)) {
			t.Errorf("%s: count %d, want %d", name, count, len(xs))
		}
		for _, q := range exchangeQs {
			if r := exchangeRankOf(sorted, quantile(q)); math.Abs(r-q) > 0.01*math.Sqrt(q*(1-q))+0.002 {
				t.Errorf("%s: q=%g has rank %.6f", name, q, r)
			}
		}
	}
	out, err := sketch.AppendTDigestExchange(nil, ours)
	if err != nil {
		t.Fatal(err)
	}
	back, err := caio.FromBytes(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("caio cannot read sketchd's export: %v", err)
	}
	check("export read by caio", back.Count(), back.Quantile)
	blob, err := ref.AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	in, err := sketch.DecodeTDigestExchange(blob, 0)
	if err != nil {
		t.Fatalf("import of caio's bytes: %v", err)
	}
	if in.Params().Compression != 100 {
		t.Errorf("imported compression %g", in.Params().Compression)
	}
	check("caio's bytes imported", in.Count(), func(q float64) float64 { return in.Quantile(q).Value })
	// Imported at another compression (the aggregate's), it still merges.
	in50, err := sketch.DecodeTDigestExchange(blob, 50)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := sketch.NewTDigest(50)
	if err := dst.Merge(in50); err != nil || dst.Count() != uint64(len(xs)) {
		t.Fatalf("merge of an import: %v, count %d", err, dst.Count())
	}
}

// TestTDigestExchangeHostile: malformed exchange blobs are errors wrapping
// ErrCorrupt, never panics or huge allocations.
func TestTDigestExchangeHostile(t *testing.T) {
	good, _ := sketch.NewTDigest(100)
	for i := range 1000 {
		_ = good.Add(float64(i))
	}
	blob, _ := sketch.AppendTDigestExchange(nil, good)
	for name, b := range map[string][]byte{
		"empty":          {},
		"short":          blob[:10],
		"encoding 1":     append([]byte{0, 0, 0, 1}, blob[4:]...),
		"huge count":     append(append(slices.Clone(blob[:12]), 0x7f, 0xff, 0xff, 0xff), blob[16:]...),
		"negative count": append(append(slices.Clone(blob[:12]), 0xff, 0xff, 0xff, 0xff), blob[16:]...),
		"truncated":      blob[:len(blob)-3],
		"trailing":       append(slices.Clone(blob), 1),
		"nan mean":       append(append(append(slices.Clone(blob[:12]), 0, 0, 0, 1), 0x7f, 0xc0, 0, 0), 1),
		"zero count":     append(append(append(slices.Clone(blob[:12]), 0, 0, 0, 1), 0x3f, 0x80, 0, 0), 0),
		"nan compress":   append(append([]byte{0, 0, 0, 2}, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1), blob[12:]...),
	} {
		if _, err := sketch.DecodeTDigestExchange(b, 0); !errors.Is(err, sketch.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzTDigestExchange: the importer never panics.
func FuzzTDigestExchange(f *testing.F) {
	good, _ := sketch.NewTDigest(100)
	for i := range 100 {
		_ = good.Add(float64(i * i))
	}
	blob, _ := sketch.AppendTDigestExchange(nil, good)
	f.Add(blob)
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := sketch.DecodeTDigestExchange(b, 100); err == nil {
			_ = d.Quantile(0.5)
		}
	})
}
