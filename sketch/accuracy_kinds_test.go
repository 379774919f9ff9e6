package sketch_test

import (
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

// thetaSeed makes the items of every trial: trial t's item i is the 16
// bytes of thetaSeed and t<<32|i (little-endian), hashed with sketch.Hash
// as ingestion hashes items.
const thetaSeed = 0x7e7a19

// TestThetaAccuracy checks the theta sketch at k = 4096 against exact sets:
// A = items [0, nA), B = items [nA−overlap, nA−overlap+nB) of each trial,
// so |A ∩ B| = overlap. For each expression (A alone, A ∪ B, A ∩ B, A \ B)
// over the trials:
//   - the RMSE of the relative error is within 15% of the theory, the mean
//     over trials of (1−θ)/(θ·n) (binomial model; 1/(k−1) for one full
//     KMV sketch), and the mean relative error is within 3 standard errors
//     of 0: the estimator is unbiased;
//   - the 95% interval covers the truth in at least 95% of all the trials of
//     the estimated expressions together, and in each expression's trials
//     at least 95% less 3 binomial standard deviations (with 800 trials an
//     exact 95% interval falls below 95% in one expression out of two).
func TestThetaAccuracy(t *testing.T) {
	var covered, total int
	const k = 4096
	t.Logf("seed %#x (item i of trial t: the 16 bytes seed, t<<32|i, little-endian)", thetaSeed)
	for _, tc := range []struct {
		name            string
		nA, nB, overlap int
		trials          int
	}{
		{"large overlap", 40_000, 40_000, 15_000, trials(800, 100)},
		{"small overlap", 40_000, 40_000, 800, trials(800, 100)},
		{"exact mode", 2_000, 1_500, 500, trials(50, 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, n := thetaTrials(t, k, tc.nA, tc.nB, tc.overlap, tc.trials)
			covered += c
			total += n
		})
	}
	cov := float64(covered) / float64(total)
	t.Logf("all estimated expressions: the 95%% interval covers %d/%d = %.4f", covered, total, cov)
	if cov < 0.95 {
		t.Errorf("the 95%% interval covers the truth in %.4f of all trials, want ≥ 0.95", cov)
	}
}

// thetaTrials runs one scenario of TestThetaAccuracy and returns how many
// intervals of estimated (not exact) expressions covered the truth, of how
// many.
func thetaTrials(t *testing.T, k, nA, nB, overlap, trials int) (coveredAll, totalAll int) {
	tc := struct{ nA, nB, overlap, trials int }{nA, nB, overlap, trials}
	truth := map[string]float64{
		"A": float64(tc.nA), "union": float64(tc.nA + tc.nB - tc.overlap),
		"intersect": float64(tc.overlap), "a_not_b": float64(tc.nA - tc.overlap),
	}
	type est struct {
		rel, theoryVar float64
		covered        bool
	}
	res := make(map[string][]est)
	var mu sync.Mutex
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for tr := w; tr < tc.trials; tr += workers {
				a, _ := sketch.NewTheta(k)
				b, _ := sketch.NewTheta(k)
				var item [16]byte
				binary.LittleEndian.PutUint64(item[:], thetaSeed)
				for i := range tc.nA + tc.nB - tc.overlap {
					binary.LittleEndian.PutUint64(item[8:], uint64(tr)<<32|uint64(i))
					h := sketch.Hash(item[:])
					if i < tc.nA {
						a.InsertHash(h)
					}
					if i >= tc.nA-tc.overlap {
						b.InsertHash(h)
					}
				}
				got := map[string]sketch.ThetaEstimate{"A": a.Estimate()}
				for name, op := range map[string]sketch.ThetaOp{"union": sketch.ThetaUnion, "intersect": sketch.ThetaIntersect, "a_not_b": sketch.ThetaANotB} {
					e, err := sketch.ThetaSetOp(op, a, b)
					if err != nil {
						t.Error(err)
						return
					}
					got[name] = e
				}
				mu.Lock()
				for name, e := range got {
					n := truth[name]
					tv := (1 - e.Theta) / (e.Theta * n)
					if name == "A" && !e.Exact {
						tv = 1.0 / float64(k-1)
					}
					if e.Exact && e.Estimate != n {
						t.Errorf("trial %d %s: exact estimate %g, truth %g", tr, name, e.Estimate, n)
					}
					res[name] = append(res[name], est{rel: e.Estimate/n - 1, theoryVar: tv, covered: e.Lower <= n && n <= e.Upper})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, name := range []string{"A", "union", "intersect", "a_not_b"} {
		rs := res[name]
		var sum, sq, tv float64
		covered := 0
		for _, r := range rs {
			sum += r.rel
			sq += r.rel * r.rel
			tv += r.theoryVar
			if r.covered {
				covered++
			}
		}
		m := float64(len(rs))
		mean, rmse, theory := sum/m, math.Sqrt(sq/m), math.Sqrt(tv/m)
		cov := float64(covered) / m
		t.Logf("%-9s truth %7.0f: rmse %.4f (theory %.4f), mean %+.5f, 95%% interval covers %d/%d = %.3f",
			name, truth[name], rmse, theory, mean, covered, len(rs), cov)
		if theory == 0 {
			if rmse != 0 {
				t.Errorf("%s: exact mode with rmse %g", name, rmse)
			}
			continue
		}
		if rmse > 1.15*theory {
			t.Errorf("%s: rmse %.4f exceeds 1.15 × theory %.4f", name, rmse, theory)
		}
		if se := theory / math.Sqrt(m); math.Abs(mean) > 3*se {
			t.Errorf("%s: mean relative error %+.5f beyond 3 standard errors (%.5f): biased", name, mean, se)
		}
		if min := 0.95 - 3*math.Sqrt(0.95*0.05/m); cov < min {
			t.Errorf("%s: the 95%% interval covers the truth in %.3f of trials, want ≥ %.3f", name, cov, min)
		}
		coveredAll += covered
		totalAll += len(rs)
	}
	return coveredAll, totalAll
}

// ddsketchData draws n values of a named distribution from a seeded RNG.
func ddsketchData(dist string, seed uint64, n int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0xdd))
	xs := make([]float64, n)
	for i := range xs {
		switch dist {
		case "lognormal": // μ = 0, σ = 2: medians near 1, p99.9 near 480
			xs[i] = math.Exp(2 * rng.NormFloat64())
		case "pareto": // x_m = 1, shape 1.2: a heavy tail (p99.9 near 315)
			xs[i] = math.Pow(1-rng.Float64(), -1/1.2)
		case "latency-ms": // lognormal shifted to mixed signs and zeros
			xs[i] = math.Round(math.Exp(1+rng.NormFloat64())*100) / 100
		}
	}
	return xs
}

// TestDDSketchRelativeError checks DDSketch's guarantee: for every
// quantile q, the answer is within a factor 1±α of the exact value of rank
// ⌊q(N−1)⌋, and the stated [Lower, Upper] holds it, on lognormal and Pareto
// data, for one sketch and after merging 60 sketches of a random split.
// The merged sketch must equal the single one exactly (same bins).
func TestDDSketchRelativeError(t *testing.T) {
	qs := []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1}
	n := trials(200_000, 50_000)
	for _, alpha := range []float64{0.01, 0.001} {
		for _, dist := range []string{"lognormal", "pareto", "latency-ms"} {
			seed := uint64(len(dist))*1000 + uint64(alpha*1e4)
			t.Run(fmt.Sprintf("%s/alpha=%g", dist, alpha), func(t *testing.T) {
				t.Logf("seed %d, n %d", seed, n)
				xs := ddsketchData(dist, seed, n)
				single, _ := sketch.NewDDSketch(alpha)
				parts := make([]*sketch.DDSketch, 60)
				for i := range parts {
					parts[i], _ = sketch.NewDDSketch(alpha)
				}
				rng := rand.New(rand.NewPCG(seed, 60))
				for _, x := range xs {
					if err := single.Add(x); err != nil {
						t.Fatal(err)
					}
					if err := parts[rng.IntN(60)].Add(x); err != nil {
						t.Fatal(err)
					}
				}
				merged, _ := sketch.NewDDSketch(alpha)
				if err := sketch.MergeAll(merged, sketchesOf(parts)...); err != nil {
					t.Fatal(err)
				}
				if diff := ddEqual(single, merged); diff != "" {
					t.Fatalf("60-way merge differs from the single sketch: %s", diff)
				}
				sorted := slices.Sorted(slices.Values(xs))
				worst := 0.0
				for _, s := range []*sketch.DDSketch{single, merged} {
					for _, q := range qs {
						exact := sorted[int(q*float64(n-1))]
						e := s.Quantile(q)
						rel := math.Abs(e.Value-exact) / math.Abs(exact)
						if exact == 0 {
							rel = math.Abs(e.Value)
						}
						worst = max(worst, rel)
						if rel > alpha*(1+1e-9) {
							t.Errorf("q=%g: %g vs exact %g: relative error %.5f > α=%g", q, e.Value, exact, rel, alpha)
						}
						if !(e.Lower <= exact && exact <= e.Upper) {
							t.Errorf("q=%g: exact %g outside [%g, %g]", q, exact, e.Lower, e.Upper)
						}
					}
				}
				t.Logf("worst relative error %.5f (α %g), %d bins", worst, alpha, single.Bins())
			})
		}
	}
}

func sketchesOf[S sketch.Sketch](xs []S) []sketch.Sketch {
	out := make([]sketch.Sketch, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
