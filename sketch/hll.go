package sketch

import (
	"fmt"
	"math"

	"github.com/axiomhq/hyperloglog"
)

// HLL counts distinct items: a HyperLogLog (github.com/axiomhq/hyperloglog,
// LogLog-Beta estimator, 8-bit registers) that starts in the sparse
// representation, which is exact for small cardinalities (linear counting
// over 2^25 virtual buckets) and turns dense (2^p bytes) at about 7,500
// distinct items for p=14.
//
// Feed it with InsertHash(Hash(item)). Its answers are a deterministic
// function of the set of hashes inserted: Estimate works on a copy while the
// sketch is sparse, so queries never change later answers.
type HLL struct {
	sk    *hyperloglog.Sketch
	p     uint8
	n     uint64
	dense bool // known to be dense (the library never goes back to sparse)
	// cache of the last estimate; valid until the next insert or merge.
	cached bool
	est    CardinalityEstimate
}

// CardinalityEstimate is a distinct count with its confidence interval.
type CardinalityEstimate struct {
	Estimate   float64
	Lower      float64 // Lower and Upper bound the true count at Confidence
	Upper      float64
	Confidence float64 // 0.95
	RSE        float64 // relative standard error of the dense estimator, 1.04/sqrt(2^p)
	// Exact is set while the sketch is sparse: the estimate is linear
	// counting over 2^25 buckets, off by at most a few items.
	Exact bool
}

// NewHLL returns an empty HLL with 2^precision registers (4..18).
func NewHLL(precision uint8) (*HLL, error) {
	if err := (Params{Kind: KindHLL, Precision: precision}).Validate(); err != nil {
		return nil, err
	}
	if precision == 0 {
		precision = DefaultPrecision
	}
	sk, err := hyperloglog.NewSketch(precision, true)
	if err != nil {
		return nil, fmt.Errorf("sketch: hll: %w", ErrParams)
	}
	return &HLL{sk: sk, p: precision}, nil
}

// Kind returns KindHLL.
func (h *HLL) Kind() Kind { return KindHLL }

// Params returns the normalized parameters.
func (h *HLL) Params() Params { return Params{Kind: KindHLL, Precision: h.p} }

// Count is the number of InsertHash calls, merges included.
func (h *HLL) Count() uint64 { return h.n }

// InsertHash adds one item by its hash, which must be Hash(item) (the hash
// is part of the wire format). It does not allocate once the sketch is dense.
func (h *HLL) InsertHash(x uint64) {
	h.sk.InsertHash(x)
	h.n++
	h.cached = false
}

// Insert is InsertHash(Hash(item)).
func (h *HLL) Insert(item []byte) { h.InsertHash(Hash(item)) }

// Estimate returns the distinct count with a 95% interval. It is a write: it
// caches its result (a dense estimate costs about 0.5 ms at p=14) until the
// next insert or merge, so calls on one sketch must not overlap.
func (h *HLL) Estimate() CardinalityEstimate {
	if h.cached {
		return h.est
	}
	rse := 1.04 / math.Sqrt(float64(uint64(1)<<h.p))
	e := CardinalityEstimate{Confidence: 0.95, RSE: rse}
	if !h.dense {
		h.dense = !h.isSparse()
	}
	if h.n == 0 {
		e.Exact = true
		h.est, h.cached = e, true
		return e
	}
	if h.dense {
		// The library's dense estimate only reads the registers.
		e.Estimate = float64(h.sk.Estimate())
		e.Lower = max(0, e.Estimate*(1-1.96*rse))
		e.Upper = e.Estimate * (1 + 1.96*rse)
	} else {
		// The sparse Estimate compacts (and may convert to dense): run it on
		// a copy so that the sketch's evolution depends only on its inserts
		// and merges. The copy's answer is the same.
		c := h.sk.Clone()
		e.Estimate = float64(c.Estimate())
		if sparseOf(c) {
			// Linear counting over M = 2^25 buckets: sd = sqrt(M(e^t - t - 1))
			// with t = n/M (Whang et al. 1990), plus one for rounding.
			const m = float64(1 << 25)
			t := e.Estimate / m
			sd := math.Sqrt(m * (math.Expm1(t) - t))
			d := 1 + math.Round(1.96*sd) // the estimate is an integer
			e.Lower = max(0, e.Estimate-d)
			e.Upper = e.Estimate + d
			e.Exact = true
		} else {
			e.Lower = max(0, e.Estimate*(1-1.96*rse))
			e.Upper = e.Estimate * (1 + 1.96*rse)
		}
	}
	h.est, h.cached = e, true
	return e
}

// isSparse reports whether the library sketch is sparse, from byte 3 of its
// own encoding header (the representation is not exported otherwise).
func (h *HLL) isSparse() bool { return sparseOf(h.sk) }

func sparseOf(sk *hyperloglog.Sketch) bool {
	// Byte 3 of the library header is 1 for sparse. A dense sketch appends
	// its 2^p registers too; callers only probe until they see dense once.
	var buf [64]byte
	b, err := sk.AppendBinary(buf[:0])
	return err == nil && len(b) > 3 && b[3] == 1
}

// Merge folds another *HLL of the same precision into h.
func (h *HLL) Merge(other Sketch) error {
	o, ok := other.(*HLL)
	if !ok || o == nil || o.p != h.p {
		return incompatible(h, other)
	}
	if o.n == 0 {
		return nil
	}
	n, c := h.n+o.n, h.n+o.n < h.n
	if c {
		return fmt.Errorf("sketch: hll merge: %w", ErrOverflow)
	}
	if err := h.sk.Merge(o.sk); err != nil {
		return fmt.Errorf("sketch: hll merge: %w: %w", ErrIncompatible, err)
	}
	h.n = n
	h.dense = h.dense || o.dense
	h.cached = false
	return nil
}

// Clone returns an independent copy.
func (h *HLL) Clone() Sketch {
	c := *h
	c.sk = h.sk.Clone()
	return &c
}

// Size is the approximate heap footprint in bytes.
func (h *HLL) Size() int {
	const overhead = 200
	if h.dense {
		return overhead + 1<<h.p
	}
	b, err := h.sk.AppendBinary(nil)
	if err != nil {
		return overhead
	}
	if len(b) > 3 && b[3] == 0 {
		h.dense = true
		return overhead + 1<<h.p
	}
	// The tmp set is a hash map (about 2x its 4-byte keys) and the list is
	// about its encoded length.
	return overhead + 2*len(b)
}

// AppendBinary appends the envelope: params {p}, payload = the library's own
// (version 2) encoding.
func (h *HLL) AppendBinary(dst []byte) ([]byte, error) {
	return appendEnvelope(dst, KindHLL, hashXXH64, h.n, h.Params(), func(b []byte) ([]byte, error) {
		out, err := h.sk.AppendBinary(b)
		if err != nil {
			return nil, fmt.Errorf("sketch: hll encode: %w", err)
		}
		return out, nil
	})
}

func decodeHLL(hd header, params, payload []byte) (*HLL, *DecodeError) {
	p, derr := parseParams(KindHLL, params)
	if derr != nil {
		return nil, derr
	}
	if len(payload) < 4 || payload[0] != 2 || payload[1] != p.Precision || payload[2] != 0 {
		return nil, corrupt(0, "hll payload header does not match version 2, precision %d", p.Precision)
	}
	sk, _ := hyperloglog.NewSketch(p.Precision, true)
	if err := sk.UnmarshalBinary(payload); err != nil {
		return nil, &DecodeError{Offset: 0, Reason: "hll payload", Err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	h := &HLL{sk: sk, p: p.Precision, n: hd.n, dense: payload[3] == 0}
	if hd.n == 0 && sk.Clone().Estimate() != 0 {
		return nil, corrupt(0, "hll with count 0 holds items")
	}
	return h, nil
}
