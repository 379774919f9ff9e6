package sketch

import (
	"encoding/binary"
	"math"
	"slices"
)

// Theta estimates distinct counts and answers set operations on them
// (union, intersection, A-not-B): a KMV ("k minimum values") sketch, the
// sketch behind Druid's and Pinot's thetaSketch (Apache DataSketches, Theta
// Sketch Framework; Dasgupta, Lang, Rhodes, Thaler, "A Framework for
// Estimating Stream Expression Cardinalities", ICDT 2016).
//
// It keeps the k smallest distinct item hashes (k = nominal entries) and θ,
// the (k+1)-th smallest hash seen, as a fraction of 2^64 (1 while fewer than
// k+1 distinct hashes were seen). Every hash below θ is retained, so the
// estimate is retained/θ, and a set expression over several sketches is
// answered from the hashes below the smallest θ (ThetaSetOp). The state is
// a function of the set of hashes seen only: merges are exact (the union's
// sketch equals the sketch of the union), commutative and associative, and
// the encoding is canonical.
//
// New hashes below θ are buffered unsorted and folded in (sort, dedup, keep
// the k smallest) when the buffer holds k of them, so an insert is O(1)
// amortized O(log k).
type Theta struct {
	k     int
	n     uint64
	theta uint64   // exclusive bound of retained hashes; math.MaxUint64 means 1
	hs    []uint64 // the retained hashes, ascending, distinct, all < theta, at most k
	buf   []uint64 // hashes < theta not yet folded into hs (may repeat)
}

// thetaOne is θ = 1: no hash was excluded yet.
const thetaOne = math.MaxUint64

// NewTheta returns an empty theta sketch with k nominal entries in 16..65536
// (0 takes the default 4096).
func NewTheta(k int) (*Theta, error) {
	p := Params{Kind: KindTheta, NominalEntries: k}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Theta{k: p.Normalize().NominalEntries, theta: thetaOne}, nil
}

// Kind returns KindTheta.
func (t *Theta) Kind() Kind { return KindTheta }

// Params returns the normalized parameters.
func (t *Theta) Params() Params { return Params{Kind: KindTheta, NominalEntries: t.k} }

// Count is the number of InsertHash calls, merges included.
func (t *Theta) Count() uint64 { return t.n }

// InsertHash adds one item by its hash, which must be Hash(item).
func (t *Theta) InsertHash(x uint64) {
	t.n++
	if x >= t.theta {
		return
	}
	t.buf = append(t.buf, x)
	if len(t.buf) >= t.k {
		t.fold()
	}
}

// Insert is InsertHash(Hash(item)).
func (t *Theta) Insert(item []byte) { t.InsertHash(Hash(item)) }

// fold moves the buffer into hs and restores the invariant.
func (t *Theta) fold() {
	if len(t.buf) == 0 {
		return
	}
	slices.Sort(t.buf)
	b := slices.Compact(t.buf)
	all := mergeUnique(make([]uint64, 0, len(t.hs)+len(b)), t.hs, b)
	t.buf = t.buf[:0]
	t.hs, t.theta = keepK(all, t.theta, t.k)
}

// keepK keeps the hashes of the sorted distinct hs below theta, at most k
// of them: when more remain, the (k+1)-th becomes θ.
func keepK(hs []uint64, theta uint64, k int) ([]uint64, uint64) {
	if i, _ := slices.BinarySearch(hs, theta); i < len(hs) {
		hs = hs[:i]
	}
	if len(hs) > k {
		theta = hs[k]
		hs = hs[:k]
	}
	return hs, theta
}

// view returns the folded state without changing t.
func (t *Theta) view() ([]uint64, uint64) {
	if len(t.buf) == 0 {
		return t.hs, t.theta
	}
	b := slices.Clone(t.buf)
	slices.Sort(b)
	b = slices.Compact(b)
	return keepK(mergeUnique(make([]uint64, 0, len(t.hs)+len(b)), t.hs, b), t.theta, t.k)
}

// Merge folds other (a *Theta with the same nominal entries) into t: the
// union.
func (t *Theta) Merge(other Sketch) error {
	o, ok := other.(*Theta)
	if !ok || o == nil || o.k != t.k {
		return incompatible(t, other)
	}
	if t.n+o.n < t.n {
		return ErrOverflow
	}
	ohs, oth := o.view()
	t.fold()
	all := make([]uint64, 0, len(t.hs)+len(ohs))
	all = mergeUnique(all, t.hs, ohs)
	t.hs, t.theta = keepK(all, min(t.theta, oth), t.k)
	t.n += o.n
	return nil
}

// mergeUnique appends the union of the sorted distinct a and b to dst.
func mergeUnique(dst, a, b []uint64) []uint64 {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			dst = append(dst, a[i])
			i++
		case a[i] > b[j]:
			dst = append(dst, b[j])
			j++
		default:
			dst = append(dst, a[i])
			i++
			j++
		}
	}
	dst = append(dst, a[i:]...)
	return append(dst, b[j:]...)
}

// Estimate returns the distinct count with its 95% interval.
func (t *Theta) Estimate() ThetaEstimate {
	hs, th := t.view()
	return thetaEstimate(len(hs), th)
}

// Retained returns the number of retained hashes and θ in (0, 1].
func (t *Theta) Retained() (int, float64) {
	hs, th := t.view()
	return len(hs), thetaFraction(th)
}

// ThetaEstimate is a distinct count estimated from r retained hashes below
// θ, with a confidence interval.
type ThetaEstimate struct {
	Estimate float64 // r/θ
	// Lower and Upper bound the true count at Confidence (see
	// thetaEstimate).
	Lower, Upper float64
	Confidence   float64 // 0.95
	// RSE is the estimate's relative standard error, sqrt((1-θ)/r) (0
	// when exact or when nothing is retained).
	RSE      float64
	Retained int
	Theta    float64
	// Exact: θ = 1, so the estimate is the exact count of distinct hashes.
	Exact bool
}

// thetaZ is the normal quantile of the 95% interval.
const thetaZ = 1.959963984540054

func thetaFraction(th uint64) float64 {
	if th == thetaOne {
		return 1
	}
	return float64(th) / (1 << 64)
}

// thetaEstimate estimates a count from r hashes retained below th. Each of
// the n distinct items is retained independently with probability θ, so r ~
// Binomial(n, θ), close to Poisson(nθ) when θ is small (the binomial model
// of DataSketches' BinomialBoundsN), and r/θ is unbiased. The interval is
// the exact (Garwood) Poisson interval for the mean nθ, computed with Byar's
// approximation of the chi-square quantiles (Breslow & Day 1987, §2.2),
// divided by θ: it holds for small r too (the intersection of two sets
// that barely overlap), where a normal interval covers too little, and
// r = 0 still has an upper bound. The Poisson variance nθ is above the
// binomial one nθ(1−θ), so the interval errs on the wide side as θ grows;
// at θ = 1 the count is exact. The lower bound is at least r.
func thetaEstimate(r int, th uint64) ThetaEstimate {
	f := thetaFraction(th)
	e := ThetaEstimate{Confidence: 0.95, Retained: r, Theta: f}
	rf := float64(r)
	if th == thetaOne {
		e.Estimate, e.Lower, e.Upper, e.Exact = rf, rf, rf, true
		return e
	}
	e.Estimate = rf / f
	lo, hi := poissonInterval(r)
	e.Lower = max(rf, lo/f)
	e.Upper = hi / f
	if r > 0 {
		e.RSE = math.Sqrt(1-f) / math.Sqrt(rf)
	}
	return e
}

// poissonInterval is the 95% Garwood interval of a Poisson mean after r
// events, with Byar's approximation (relative error below 1e-3 for r ≥ 1).
func poissonInterval(r int) (lo, hi float64) {
	rf := float64(r)
	if r > 0 {
		c := 1 - 1/(9*rf) - thetaZ/(3*math.Sqrt(rf))
		lo = rf * c * c * c
	}
	r1 := rf + 1
	c := 1 - 1/(9*r1) + thetaZ/(3*math.Sqrt(r1))
	return lo, r1 * c * c * c
}

// ThetaOp is a set operation.
type ThetaOp uint8

// The set operations.
const (
	ThetaUnion     ThetaOp = iota + 1 // A ∪ B
	ThetaIntersect                    // A ∩ B
	ThetaANotB                        // A \ B
)

// ThetaSetOp estimates the distinct count of a op b. Both must have the same
// nominal entries. θ is the smaller of the two; the result's retained
// hashes are those below it that the operation keeps (for a union, at most
// k of them, as Merge does), and its estimate and bounds are
// thetaEstimate's: the retained hashes of a set expression are a Bernoulli(θ)
// sample of its items, as for one sketch.
func ThetaSetOp(op ThetaOp, a, b *Theta) (ThetaEstimate, error) {
	if a == nil || b == nil || a.k != b.k {
		return ThetaEstimate{}, incompatible(a, b)
	}
	ah, at := a.view()
	bh, bt := b.view()
	th := min(at, bt)
	ah, _ = keepK(ah, th, len(ah))
	bh, _ = keepK(bh, th, len(bh))
	var r int
	switch op {
	case ThetaUnion:
		var all []uint64
		all, th = keepK(mergeUnique(make([]uint64, 0, len(ah)+len(bh)), ah, bh), th, a.k)
		r = len(all)
	case ThetaIntersect:
		for _, x := range ah {
			if _, ok := slices.BinarySearch(bh, x); ok {
				r++
			}
		}
	case ThetaANotB:
		for _, x := range ah {
			if _, ok := slices.BinarySearch(bh, x); !ok {
				r++
			}
		}
	default:
		return ThetaEstimate{}, ErrParams
	}
	return thetaEstimate(r, th), nil
}

// Clone returns an independent copy.
func (t *Theta) Clone() Sketch {
	c := *t
	c.hs = slices.Clone(t.hs)
	c.buf = slices.Clone(t.buf)
	return &c
}

// Size is the approximate heap footprint in bytes.
func (t *Theta) Size() int { return 80 + 8*(cap(t.hs)+cap(t.buf)) }

// AppendBinary appends the envelope. Payload: u64 θ (2^64-1 means 1),
// uvarint R, then the R retained hashes ascending as uvarint gaps (the
// first from 0). The encoding is canonical.
func (t *Theta) AppendBinary(dst []byte) ([]byte, error) {
	hs, th := t.view()
	return appendEnvelope(dst, KindTheta, hashXXH64, t.n, t.Params(), func(b []byte) ([]byte, error) {
		b = binary.LittleEndian.AppendUint64(b, th)
		b = binary.AppendUvarint(b, uint64(len(hs)))
		prev := uint64(0)
		for _, x := range hs {
			b = binary.AppendUvarint(b, x-prev)
			prev = x
		}
		return b, nil
	})
}

func decodeTheta(h header, params, payload []byte) (*Theta, *DecodeError) {
	p, derr := parseParams(KindTheta, params)
	if derr != nil {
		return nil, derr
	}
	t := &Theta{k: p.NominalEntries, n: h.n}
	r := reader{b: payload}
	t.theta = r.u64("theta")
	nr := r.count("retained hashes", 1)
	switch {
	case r.err != nil:
	case nr > t.k:
		r.fail("%d retained hashes exceed k=%d", nr, t.k)
	case t.theta != thetaOne && nr != t.k:
		r.fail("θ < 1 with %d retained hashes, want k=%d", nr, t.k)
	case uint64(nr) > h.n:
		r.fail("%d retained hashes for count %d", nr, h.n)
	case t.theta == 0:
		r.fail("θ = 0")
	}
	if r.err == nil && nr > 0 {
		t.hs = make([]uint64, 0, nr)
		prev := uint64(0)
		for i := 0; i < nr && r.err == nil; i++ {
			g := r.uvarint("hash gap")
			x := prev + g
			switch {
			case r.err != nil:
			case x < prev || (i > 0 && g == 0):
				r.fail("hash %d not ascending", i)
			case x >= t.theta:
				r.fail("hash %d not below θ", i)
			}
			t.hs = append(t.hs, x)
			prev = x
		}
	}
	r.end("theta payload")
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}
