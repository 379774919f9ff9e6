package sketch

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// DDSketch estimates quantiles with a relative-error guarantee: the value
// it returns for quantile q is within a factor 1±α of the exact value of
// rank ⌊q·(N−1)⌋ (Masson, Rim, Lee, "DDSketch: A Fast and Fully-Mergeable
// Quantile Sketch with Relative-Error Guarantees", VLDB 2019). It wraps
// github.com/DataDog/sketches-go: a logarithmic index mapping with
// γ = (1+α)/(1−α), and for positive and negative values each a dense store
// of at most DDSketchMaxBins(α) bins that collapses its lowest bins (the
// values nearest zero) when the values span more than that: 18 decades
// (10^-9..10^9, say) keep the guarantee at any α. Counts are whole numbers
// (every value has weight 1), so merges are exact, commutative and
// associative; min and max are kept exactly and bound every answer.
type DDSketch struct {
	alpha    float64
	n        uint64
	min, max float64
	sk       *ddsketch.DDSketch
}

// ddsketchDecades is the span of values, in powers of ten, that the stores
// keep without collapsing.
const ddsketchDecades = 18

// DDSketchMaxBins is the number of bins of each store at relative accuracy
// alpha: ⌈ln(10^18)/ln γ⌉ (2,073 at α = 0.01).
func DDSketchMaxBins(alpha float64) int {
	g := (1 + alpha) / (1 - alpha)
	return int(math.Ceil(ddsketchDecades * math.Ln10 / math.Log(g)))
}

// NewDDSketch returns an empty DDSketch with relative accuracy α in
// [0.001, 0.5] (0 takes the default 0.01).
func NewDDSketch(alpha float64) (*DDSketch, error) {
	p := Params{Kind: KindDDSketch, RelativeAccuracy: alpha}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newDDSketch(p.Normalize().RelativeAccuracy), nil
}

func newDDSketch(alpha float64) *DDSketch {
	m, _ := mapping.NewLogarithmicMapping(alpha) // α is in range
	bins := DDSketchMaxBins(alpha)
	return &DDSketch{
		alpha: alpha,
		sk:    ddsketch.NewDDSketch(m, store.NewCollapsingLowestDenseStore(bins), store.NewCollapsingLowestDenseStore(bins)),
	}
}

// Kind returns KindDDSketch.
func (d *DDSketch) Kind() Kind { return KindDDSketch }

// Params returns the normalized parameters.
func (d *DDSketch) Params() Params { return Params{Kind: KindDDSketch, RelativeAccuracy: d.alpha} }

// Count is the number of values added, merges included.
func (d *DDSketch) Count() uint64 { return d.n }

// Add adds one finite value within ±MaxInput (else ErrNonFinite or
// ErrRange). Values whose magnitude is below the mapping's smallest
// indexable value (about 2e-308) count as zero.
func (d *DDSketch) Add(x float64) error {
	if err := checkInput("ddsketch", x); err != nil {
		return err
	}
	if d.n == math.MaxUint64 {
		return ErrOverflow
	}
	if err := d.sk.Add(x); err != nil {
		return fmt.Errorf("sketch: ddsketch add %g: %w: %w", x, ErrNonFinite, err)
	}
	if d.n == 0 {
		d.min, d.max = x, x
	} else {
		d.min, d.max = min(d.min, x), max(d.max, x)
	}
	d.n++
	return nil
}

// Merge folds other (a *DDSketch with the same α) into d.
func (d *DDSketch) Merge(other Sketch) error {
	o, ok := other.(*DDSketch)
	if !ok || o == nil || o.alpha != d.alpha {
		return incompatible(d, other)
	}
	if d.n+o.n < d.n {
		return ErrOverflow
	}
	if o.n == 0 {
		return nil
	}
	if err := d.sk.MergeWith(o.sk); err != nil {
		return fmt.Errorf("sketch: ddsketch merge: %w", err)
	}
	if d.n == 0 {
		d.min, d.max = o.min, o.max
	} else {
		d.min, d.max = min(d.min, o.min), max(d.max, o.max)
	}
	d.n += o.n
	return nil
}

// Min and Max return the exact extremes (NaN when empty).
func (d *DDSketch) Min() float64 {
	if d.n == 0 {
		return math.NaN()
	}
	return d.min
}

// Max returns the largest value added (NaN when empty).
func (d *DDSketch) Max() float64 {
	if d.n == 0 {
		return math.NaN()
	}
	return d.max
}

// RelativeQuantile is a quantile estimated with a relative-error bound.
type RelativeQuantile struct {
	Q     float64
	Value float64 // NaN when empty or Q is outside [0, 1]
	// Lower and Upper bound the exact quantile: the values x with
	// |Value − x| ≤ α·|x|, clamped to [Min, Max]; from a bin holding the
	// values nearest zero a store collapsed (past its 18 decades), down to
	// Min (up to Max for negative values), or to zero when the values have
	// both signs.
	Lower, Upper float64
}

// Quantile returns the estimate of quantile q, clamped to [Min, Max].
func (d *DDSketch) Quantile(q float64) RelativeQuantile {
	e := RelativeQuantile{Q: q, Value: math.NaN(), Lower: math.NaN(), Upper: math.NaN()}
	if d.n == 0 || !(q >= 0 && q <= 1) {
		return e
	}
	v := d.valueAtQuantile(q)
	collapsed := d.inCollapsedBin(v)
	v = min(max(v, d.min), d.max)
	lo, hi := v/(1+d.alpha), v/(1-d.alpha)
	if v < 0 {
		lo, hi = v/(1-d.alpha), v/(1+d.alpha)
	}
	switch {
	case collapsed && v > 0:
		lo = min(lo, max(d.min, 0)) // any positive value up to the bin's may be in it
	case collapsed && v < 0:
		hi = max(hi, min(d.max, 0))
	}
	e.Value, e.Lower, e.Upper = v, max(lo, d.min), min(hi, d.max)
	return e
}

// valueAtQuantile is the library's value (its bin's) for the exact value
// of rank ⌊q·(N−1)⌋ (0-based, ascending): GetValueAtQuantile with the rank
// rounded down first. The library passes the fractional rank on, and in
// the negative store, read from the end, that took the value of rank
// ⌈q·(N−1)⌉: 100 values -1e13, -9.9e12, ..., -1e11 answered q = 0.5 with
// -4.14e12, 1.5% from the exact -4.2e12 at α = 1%.
func (d *DDSketch) valueAtQuantile(q float64) float64 {
	rank := math.Floor(float64(q * float64(d.n-1)))
	neg, zero := d.sk.GetNegativeValueStore().TotalCount(), d.sk.GetZeroCount()
	switch {
	case rank < neg:
		return -d.sk.Value(d.sk.GetNegativeValueStore().KeyAtRank(neg - 1 - rank))
	case rank < neg+zero:
		return 0
	default:
		return d.sk.Value(d.sk.GetPositiveValueStore().KeyAtRank(rank - neg - zero))
	}
}

// inCollapsedBin reports whether the bin of value v (as the library
// answered it) may hold the values nearest zero that its store collapsed
// into it: it is its store's lowest bin, and the store spans all of its
// DDSketchMaxBins, as a store does once it has collapsed (and keeps doing
// through merges; a store whose values span exactly that many bins
// without collapsing is taken as collapsed too: its bounds are wider than
// they need be, never wrong). Such a bin's values are not within α of its
// value: in values spanning 19 decades (nine of 1e-6 and one of 1e13) the
// median answered 1.0025e-5 with bounds [9.93e-6, 1.013e-5] that did not
// hold the exact 1e-6.
func (d *DDSketch) inCollapsedBin(v float64) bool {
	s := d.sk.GetPositiveValueStore()
	if v < 0 {
		s = d.sk.GetNegativeValueStore()
	}
	if v == 0 || s.IsEmpty() {
		return false
	}
	lo, err1 := s.MinIndex()
	hi, err2 := s.MaxIndex()
	return err1 == nil && err2 == nil && hi-lo+1 >= DDSketchMaxBins(d.alpha) && d.sk.Index(math.Abs(v)) == lo
}

// Clone returns an independent copy.
func (d *DDSketch) Clone() Sketch {
	c := *d
	c.sk = d.sk.Copy()
	return &c
}

// Bins returns the number of non-empty bins (both signs).
func (d *DDSketch) Bins() int {
	n := 0
	count := func(int, float64) bool { n++; return false }
	d.sk.GetPositiveValueStore().ForEach(count)
	d.sk.GetNegativeValueStore().ForEach(count)
	return n
}

// Size is the approximate heap footprint in bytes: the sketch, its
// mapping and stores (about 320 bytes), and each store's bins: the
// library allocates 63 more than the index span and grows by append, so
// about a quarter more again (BenchmarkFootprint, TestFootprint).
func (d *DDSketch) Size() int {
	bins := func(s store.Store) int {
		lo, err1 := s.MinIndex()
		hi, err2 := s.MaxIndex()
		if err1 != nil || err2 != nil {
			return 0
		}
		return int(heapsize.Class(int64(8*(hi-lo+64)))) * 5 / 4
	}
	return 320 + bins(d.sk.GetPositiveValueStore()) + bins(d.sk.GetNegativeValueStore())
}

// AppendBinary appends the envelope. Payload (empty when the count is 0):
// f64 min, f64 max, uvarint zero count, then the positive and the negative
// store, each as uvarint B and B bins {zigzag varint index gap (the first
// from 0), uvarint count}, ascending by index. The encoding is canonical.
func (d *DDSketch) AppendBinary(dst []byte) ([]byte, error) {
	return appendEnvelope(dst, KindDDSketch, hashNone, d.n, d.Params(), func(b []byte) ([]byte, error) {
		if d.n == 0 {
			return b, nil
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.min))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.max))
		b = binary.AppendUvarint(b, uint64(d.sk.GetZeroCount()))
		for _, s := range []store.Store{d.sk.GetPositiveValueStore(), d.sk.GetNegativeValueStore()} {
			nb := 0
			s.ForEach(func(int, float64) bool { nb++; return false })
			b = binary.AppendUvarint(b, uint64(nb))
			prev := 0
			s.ForEach(func(i int, c float64) bool {
				b = binary.AppendVarint(b, int64(i-prev))
				b = binary.AppendUvarint(b, uint64(c))
				prev = i
				return false
			})
		}
		return b, nil
	})
}

func decodeDDSketch(h header, params, payload []byte) (*DDSketch, *DecodeError) {
	p, derr := parseParams(KindDDSketch, params)
	if derr != nil {
		return nil, derr
	}
	d := newDDSketch(p.RelativeAccuracy)
	d.n = h.n
	r := reader{b: payload}
	if h.n == 0 {
		r.end("empty ddsketch payload")
		if r.err != nil {
			return nil, r.err
		}
		return d, nil
	}
	d.min, d.max = r.f64("min"), r.f64("max")
	if r.err == nil && !(isFinite(d.min) && isFinite(d.max) && d.min <= d.max) {
		r.fail("bad min %g / max %g", d.min, d.max)
	}
	sum := r.uvarint("zero count")
	if sum > 0 {
		_ = d.sk.AddWithCount(0, float64(sum))
	}
	maxBins := DDSketchMaxBins(d.alpha)
	for si, s := range []store.Store{d.sk.GetPositiveValueStore(), d.sk.GetNegativeValueStore()} {
		nb := r.count("bins", 2)
		if r.err == nil && nb > maxBins {
			r.fail("store %d: %d bins exceed %d", si, nb, maxBins)
		}
		idx, first := int64(0), int64(0)
		for i := 0; i < nb && r.err == nil; i++ {
			gap, c := r.varint("bin index gap"), r.uvarint("bin count")
			idx += gap
			if i == 0 {
				first = idx
			}
			switch {
			case r.err != nil:
			case i > 0 && gap <= 0:
				r.fail("store %d bin %d: index not ascending", si, i)
			case idx < math.MinInt32 || idx > math.MaxInt32 || idx-first >= int64(maxBins):
				r.fail("store %d bin %d: index %d out of range", si, i, idx)
			case c == 0:
				r.fail("store %d bin %d: zero count", si, i)
			case sum+c < sum || sum+c > h.n:
				r.fail("bin counts exceed the count %d", h.n)
			default:
				s.AddWithCount(int(idx), float64(c))
				sum += c
			}
		}
	}
	if r.err == nil && sum != h.n {
		r.fail("bin counts sum to %d, count is %d", sum, h.n)
	}
	r.end("ddsketch payload")
	if r.err != nil {
		return nil, r.err
	}
	return d, nil
}
