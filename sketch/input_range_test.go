package sketch

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// The numeric kinds take every finite value within ±MaxInput and refuse
// the rest with the error that says why, so a value is refused when its
// event is decoded (internal/decode), never when it is applied.
func TestNumericInputRange(t *testing.T) {
	td, _ := NewTDigest(100)
	dd, _ := NewDDSketch(0.5) // the mapping's smallest largest value: 8.47e307
	adds := map[string]func(float64) error{"tdigest": td.Add, "ddsketch": dd.Add}
	for name, add := range adds {
		for _, x := range []float64{MaxInput, -MaxInput, 1e307, -1e-310, 0} {
			if err := add(x); err != nil {
				t.Errorf("%s: Add(%g) = %v, want nil", name, x, err)
			}
		}
		for _, x := range []float64{math.Nextafter(MaxInput, math.Inf(1)), -1.7e308, math.MaxFloat64} {
			if err := add(x); !errors.Is(err, ErrRange) {
				t.Errorf("%s: Add(%g) = %v, want ErrRange", name, x, err)
			}
		}
		for _, x := range []float64{math.NaN(), math.Inf(-1)} {
			if err := add(x); !errors.Is(err, ErrNonFinite) {
				t.Errorf("%s: Add(%g) = %v, want ErrNonFinite", name, x, err)
			}
		}
	}
	// MaxInput is within DDSketch's index mapping at every relative
	// accuracy (its largest value falls as α grows: 8.47e307 at 0.5).
	for _, alpha := range []float64{0.001, 0.01, 0.1, 0.5} {
		m, err := mapping.NewLogarithmicMapping(alpha)
		if err != nil {
			t.Fatal(err)
		}
		if m.MaxIndexableValue() < MaxInput {
			t.Errorf("α %g: the mapping's largest value %g is below MaxInput %g", alpha, m.MaxIndexableValue(), float64(MaxInput))
		}
	}
	if td.Count() != 5 || dd.Count() != 5 {
		t.Errorf("counts %d, %d: want 5 each (the refused values not counted)", td.Count(), dd.Count())
	}
}

// A t-digest's answers stay finite for values up to ±MaxInput, however
// many: its mean was a sum of mean × weight, which overflowed to ±Inf
// (answered as null) once the values' sum passed MaxFloat64, and an
// interpolation multiplied means by ranks.
func TestTDigestLargeValuesStayFinite(t *testing.T) {
	const n = 1000
	big := 3e307
	td, _ := NewTDigest(100)
	for i := range n {
		x := big
		if i%4 == 0 {
			x = MaxInput
		}
		if err := td.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	exact := MaxInput/4 + big*3/4 // a quarter at MaxInput, the rest at big
	m := td.Mean()
	if math.IsInf(m.Value, 0) || math.IsNaN(m.Value) || !(m.Lower <= exact && exact <= m.Upper) {
		t.Errorf("Mean = %+v, want finite bounds holding %g", m, exact)
	}
	if rel := math.Abs(m.Value-exact) / exact; rel > 1e-12 {
		t.Errorf("Mean %g off the exact %g by %g", m.Value, exact, rel)
	}
	tm := td.TrimmedMean(0, 1)
	if math.IsInf(tm.Value, 0) || math.IsNaN(tm.Value) || math.Abs(tm.Value-exact)/exact > 1e-12 {
		t.Errorf("TrimmedMean(0, 1) = %+v, want %g", tm, exact)
	}
	for _, q := range []float64{0, 0.1, 0.5, 0.76, 0.9, 1} {
		e := td.Quantile(q)
		if !(e.Value >= td.Min() && e.Value <= td.Max()) {
			t.Errorf("Quantile(%g) = %+v, want within [%g, %g]", q, e, td.Min(), td.Max())
		}
	}
	// Both signs at once: the differences of the extremes stay finite.
	both, _ := NewTDigest(50)
	for i := range n {
		x := MaxInput * float64(1-2*(i%2))
		if err := both.Add(x / 7 * float64(i%7+1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []float64{0.01, 0.3, 0.5, 0.7, 0.99} {
		if v := both.Quantile(q).Value; math.IsInf(v, 0) || math.IsNaN(v) {
			t.Errorf("Quantile(%g) of ±MaxInput = %g", q, v)
		}
		if c := both.CDF(0); math.IsNaN(c) || c < 0 || c > 1 {
			t.Errorf("CDF(0) = %g", c)
		}
	}
	if m := both.Mean(); math.IsInf(m.Value, 0) || math.IsNaN(m.Value) {
		t.Errorf("Mean of ±MaxInput = %+v", m)
	}
}

// Scaled by a power of two, a t-digest's answers scale with it: the same
// centroids, and the same arithmetic but where a product of means and
// ranks would overflow (TestTDigestLargeValuesStayFinite).
func TestTDigestAnswersScaleToMaxInput(t *testing.T) {
	const scale = 0x1p1018 // values in [1, 10) scaled stay below MaxInput
	small, _ := NewTDigest(100)
	big, _ := NewTDigest(100)
	for i := range 20000 {
		y := 1 + 9*math.Mod(float64(i)*0.6180339887498949, 1)
		if err := small.AddWeighted(y, uint64(i%5+1)); err != nil {
			t.Fatal(err)
		}
		if err := big.AddWeighted(y*scale, uint64(i%5+1)); err != nil {
			t.Fatal(err)
		}
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if !(math.Abs(got-want) <= 1e-12*math.Abs(want)) {
			t.Errorf("%s: %g, want %g (the small digest's, scaled)", what, got, want)
		}
	}
	for _, q := range []float64{0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999} {
		s, b := small.Quantile(q), big.Quantile(q)
		near("quantile", b.Value, s.Value*scale)
		near("lower", b.Lower, s.Lower*scale)
		near("upper", b.Upper, s.Upper*scale)
	}
	near("mean", big.Mean().Value, small.Mean().Value*scale)
	near("trimmed mean", big.TrimmedMean(0.1, 0.9).Value, small.TrimmedMean(0.1, 0.9).Value*scale)
}

// A DDSketch whose values span more than its stores' 18 decades collapses
// the values nearest zero into its lowest bin, whose value they are not
// within α of: a quantile answered from that bin has bounds reaching down
// to the exact minimum (toward zero for the negative store), so they hold
// the exact value, while the quantiles of the other bins keep α's.
func TestDDSketchCollapsedBinBounds(t *testing.T) {
	for _, sign := range []float64{1, -1} {
		d, _ := NewDDSketch(0.01)
		var vals []float64
		for range 9 {
			vals = append(vals, sign*1e-6)
		}
		vals = append(vals, sign*1e13) // 19 decades
		for i := range 90 {
			vals = append(vals, sign*float64(i+1)*1e11) // in the top bins, not collapsed
		}
		for _, x := range vals {
			if err := d.Add(x); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(vals)
		for _, q := range []float64{0, 0.02, 0.05, 0.5, 0.9, 1} {
			e := d.Quantile(q)
			exact := vals[int(q*float64(len(vals)-1))]
			if !(e.Lower <= exact && exact <= e.Upper) {
				t.Errorf("sign %g q %g: %+v does not hold the exact %g", sign, q, e, exact)
			}
			if math.Abs(exact) >= 1e11 && (e.Upper-e.Lower) > 2.1*0.01*math.Abs(exact) {
				t.Errorf("sign %g q %g: %+v wider than α's for a value of an uncollapsed bin", sign, q, e)
			}
		}
	}
}

// The value for q is within α of the exact value of rank ⌊q·(N−1)⌋ on
// both sides of zero: the library read the negative store with the
// fractional rank and answered rank ⌈q·(N−1)⌉ there.
func TestDDSketchNegativeRanks(t *testing.T) {
	const seed = 11
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	d, _ := NewDDSketch(0.01)
	vals := make([]float64, 999)
	for i := range vals {
		vals[i] = math.Exp(rng.NormFloat64() * 2)
		if i%3 != 0 {
			vals[i] = -vals[i] // two thirds negative
		}
		if err := d.Add(vals[i]); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(vals)
	bad := 0
	for i := 0; i <= 1000; i++ {
		q := float64(i) / 1000
		exact := vals[int(math.Floor(q*float64(len(vals)-1)))]
		e := d.Quantile(q)
		if math.Abs(e.Value-exact) > 0.01*math.Abs(exact)*(1+1e-9) || !(e.Lower <= exact && exact <= e.Upper) {
			bad++
			if bad <= 3 {
				t.Errorf("q %g: %+v, exact %g", q, e, exact)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of 1001 quantiles off the exact value of rank ⌊q·(N−1)⌋ by more than α", bad)
	}
}
