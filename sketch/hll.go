package sketch

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

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
	sk    *hyperloglog.Sketch // nil while a decoded sparse h is lazy: enc holds it
	p     uint8
	n     uint64
	dense bool // known to be dense (the library never goes back to sparse)
	// enc is the library encoding of a sparse h that was decoded, or made
	// by MergeMany or mergeLargeSparse, and is unchanged since (nil after
	// an insert or a Merge, and for a dense h). Such an h is lazy (sk nil)
	// until it changes: enc is all it holds (hll_lazy.go). MergeMany and
	// mergeLargeSparse read a sparse operand's keys from it: encoding a
	// decoded pane again (its temporary set walked and written out) was a
	// sixth of the cold computation of a 24-hour series of distinct counts
	// (BenchmarkFirstSeries in internal/query). Shared by clones, never
	// written.
	enc []byte
	// cache of the last estimate; valid until the next insert or merge.
	cached bool
	est    CardinalityEstimate
	// recent remembers the sparse keys of hashes inserted while sparse, to
	// skip inserting them again (hll_recent.go); nil before recentAfter
	// inserts and once h is known to be dense. Never shared.
	recent []uint32
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
	h.n++
	if h.dense {
		h.recent = nil // no use once dense (hll_recent.go)
	} else if h.repeat(x) {
		return // h holds x's key already: no answer changes
	}
	h.lib().InsertHash(x)
	h.enc = nil
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
		c := h.libCopy()
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
func (h *HLL) isSparse() bool { return h.sk == nil || sparseOf(h.sk) }

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
	dst, src := h.lib(), o.libView()
	h.enc = nil
	if err := dst.Merge(src); err != nil {
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
	if h.sk != nil { // else c is lazy too, sharing enc
		c.sk = h.sk.Clone()
	}
	c.recent = nil
	return &c
}

// Registers returns the sketch's 2^p registers as a dense HyperLogLog holds
// them. They are a function of the set of hashes inserted alone, whatever
// the order, the merges and the encode/decode round trips, so they are the
// way to ask whether two sketches are the same: the encoding is not
// canonical (a sparse sketch's bytes depend on when its temporary set was
// compacted, which a decode does early).
func (h *HLL) Registers() []byte {
	d, err := hyperloglog.NewSketch(h.p, false)
	if err != nil {
		return nil // h.p was validated when h was made
	}
	if err := d.Merge(h.libCopy()); err != nil { // Merge compacts a sparse operand: a copy
		return nil
	}
	b, err := d.MarshalBinary()
	const header = 8 // version, p, b, sparse flag, register count (4 bytes)
	if err != nil || len(b) != header+1<<h.p {
		return nil
	}
	return b[header:]
}

// Size is the approximate heap footprint in bytes.
func (h *HLL) Size() int {
	overhead := 200 + 4*len(h.recent)
	if h.dense {
		return overhead + 1<<h.p
	}
	switch {
	case h.sk == nil: // lazy: enc alone
		return overhead + len(h.enc)
	case h.enc != nil: // the library's state, and enc kept besides
		return overhead + 3*len(h.enc)
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
		out, err := h.libView().AppendBinary(b)
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
	if payload[3] == 1 && hd.n > 0 { // sparse: lazy (hll_lazy.go)
		if err := checkSparseEncoding(p.Precision, payload); err != nil {
			return nil, &DecodeError{Offset: 0, Reason: "hll payload", Err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
		}
		return &HLL{p: p.Precision, n: hd.n, enc: slices.Clone(payload)}, nil // payload is the caller's
	}
	sk, _ := hyperloglog.NewSketch(p.Precision, true)
	if err := sk.UnmarshalBinary(payload); err != nil {
		return nil, &DecodeError{Offset: 0, Reason: "hll payload", Err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	h := &HLL{sk: sk, p: p.Precision, n: hd.n, dense: payload[3] == 0}
	if !h.dense {
		h.enc = slices.Clone(payload) // payload is the caller's
	}
	if hd.n == 0 && sk.Clone().Estimate() != 0 {
		return nil, corrupt(0, "hll with count 0 holds items")
	}
	return h, nil
}

// MergeMany folds others into h as repeated Merge would, with the same
// estimate. While h and the others are sparse it collects their sparse keys
// and unions them at once (sort, dedup, one rebuild) instead of merging one
// by one, each merge re-sorting and rebuilding the growing key list; once
// the union outgrows the sparse representation (or a dense operand comes),
// it turns dense and merges the rest one by one, which is cheap for a dense
// sketch. On error h is unchanged.
func (h *HLL) MergeMany(others ...*HLL) error {
	n := h.n
	for _, o := range others {
		if o == nil || o.p != h.p {
			return incompatible(h, o)
		}
		var c bool
		if n, c = n+o.n, n+o.n < n; c {
			return fmt.Errorf("sketch: hll merge: %w", ErrOverflow)
		}
	}
	rest := others
	if len(others) == 1 {
		if merged, err := h.mergeLargeSparse(others[0], n); merged || err != nil {
			return err
		}
	}
	if !h.dense && len(others) >= 2 {
		m := 1 << h.p
		keysV, spareV := hllKeys.get(), hllKeys.get()
		keys, spare := *keysV, *spareV
		defer func() {
			// compactKeys trades the two arrays back and forth: give back
			// both, whichever holds what.
			*keysV, *spareV = keys, spare
			hllKeys.put(keysV)
			hllKeys.put(spareV)
		}()
		var buf []byte
		collect := func(s *HLL) bool {
			if s.dense {
				return false
			}
			enc := s.enc
			if enc == nil {
				var err error
				if buf, err = s.sk.AppendBinary(buf[:0]); err != nil {
					return false // unencodable: Merge reports it
				}
				enc = buf
			}
			if len(enc) < 4 || enc[3] != 1 {
				return false // dense
			}
			var ok bool
			keys, ok = appendSparseKeys(keys, enc)
			return ok
		}
		if collect(h) {
			sum, compacted := h.n, 0
			for len(rest) > 0 {
				if o := rest[0]; o.n == 0 || collect(o) {
					sum += o.n
					rest = rest[1:]
				} else {
					break
				}
				// Compact every m/2 new keys: the union turns dense at about
				// m/2 distinct keys (list bytes > m), and from then on merging
				// into dense registers is cheaper.
				if len(keys) > compacted+m/2 {
					keys, spare = compactKeys(keys, compacted, spare)
					if compacted = len(keys); sparseListBytes(keys) > m {
						break
					}
				}
			}
			keys, spare = compactKeys(keys, compacted, spare)
			if err := h.setEncoding(encodeSparseKeys(h.p, keys)); err != nil {
				return fmt.Errorf("sketch: hll merge: %w", err)
			}
			h.n = sum
		}
	}
	for _, o := range rest {
		if err := h.Merge(o); err != nil {
			return err
		}
	}
	return nil
}

// mergeLargeSparse is Merge of one sparse o whose distinct keys alone are
// more than the library keeps in its temporary set (2^p/100): merging
// them, the library compacts, so the result is the sorted union of both
// sketches' keys as one list (dense registers once the list passes 2^p
// bytes), with nothing left in the temporary set. That list is built here
// in one pass over o's (when o's keys are all in its sorted list, as a
// merged or decoded sketch's are) with h's keys, sorted, inserted, instead
// of through the library's hash set; with the same bytes
// (TestHLLMergeLargeSparseBytes). It is the merge of a window's cached
// final part into its open part (internal/query), whose cost grew with the
// final part. merged is false when o or h does not qualify (h is
// unchanged); n is the merged count.
func (h *HLL) mergeLargeSparse(o *HLL, n uint64) (merged bool, err error) {
	if h.dense || o.dense {
		return false, nil
	}
	src, err := o.encoding()
	if err != nil || len(src) < 4 || src[3] != 1 {
		return false, nil
	}
	list, count, ok := sortedSparseList(src)
	if !ok || count*100 <= 1<<h.p {
		return false, nil
	}
	buf, err := h.encoding()
	if err != nil || len(buf) < 4 || buf[3] != 1 {
		return false, nil
	}
	mineV := hllKeys.get()
	defer hllKeys.put(mineV)
	mine, ok := appendSparseKeys(*mineV, buf)
	*mineV = mine
	if !ok {
		return false, nil
	}
	enc, dense, ok := unionList(h.p, list, count, sortedUnique(mine))
	if !ok {
		return false, nil
	}
	if err := h.setEncoding(enc, dense); err != nil {
		return false, fmt.Errorf("sketch: hll merge: %w", err)
	}
	h.n = n
	return true, nil
}

// setEncoding makes h the sketch of enc, a library encoding built here
// from sorted, distinct keys (so valid by construction: the list's keys
// strictly ascending, minimal varints): lazy when sparse, as a decoded
// one is (hll_lazy.go), which spared building the library's sketch of
// every merged rollup block and window (its decode walks and checks the
// whole list) and encoding it again when it is merged in turn; dense
// through the library.
func (h *HLL) setEncoding(enc []byte, dense bool) error {
	var sk *hyperloglog.Sketch
	if dense {
		var err error
		if sk, err = sketchOf(h.p, enc); err != nil {
			return err
		}
		enc = nil
	} else if cap(enc) > len(enc)+len(enc)/4 { // unionList's room to spare
		enc = slices.Clone(enc)
	}
	h.sk, h.enc, h.dense, h.cached = sk, enc, dense, false
	return nil
}

// encoding returns the library encoding of h (read only): enc, or h
// encoded.
func (h *HLL) encoding() ([]byte, error) {
	if h.enc != nil {
		return h.enc, nil
	}
	return h.sk.AppendBinary(nil)
}

// sortedSparseList returns the compressed list of the library's version 2
// sparse encoding enc and its key count, when its temporary set is empty
// (so the list holds every key, sorted and distinct).
func sortedSparseList(enc []byte) (list []byte, count int, ok bool) {
	if len(enc) < 20 || enc[0] != 2 || enc[3] != 1 || binary.BigEndian.Uint32(enc[4:8]) != 0 {
		return nil, 0, false
	}
	count = int(binary.BigEndian.Uint32(enc[8:]))
	size := int(binary.BigEndian.Uint32(enc[16:]))
	if len(enc)-20 != size || count > size {
		return nil, 0, false
	}
	return enc[20:], count, true
}

// unionList returns the library's encoding of the union of the count keys
// of the compressed list (sorted, distinct) and keys (sorted, distinct):
// sparse while its list fits in 2^p bytes, dense beyond, as
// encodeSparseKeys would make it from all of them.
func unionList(p uint8, list []byte, count int, keys []uint32) (enc []byte, dense bool, ok bool) {
	const header = 20 // version, p, b, sparse, tmp count, count, last, size
	enc = make([]byte, header, header+len(list)+5*len(keys))
	var last uint32
	n := 0
	put := func(k uint32) {
		enc = binary.AppendUvarint(enc, uint64(k-last))
		last = k
		n++
	}
	var cur uint32
	for i, b := 0, list; i < count; i++ {
		d, w := binary.Uvarint(b)
		if w <= 0 || d > math.MaxUint32 {
			return nil, false, false
		}
		b = b[w:]
		cur += uint32(d)
		for len(keys) > 0 && keys[0] < cur {
			put(keys[0])
			keys = keys[1:]
		}
		if len(keys) > 0 && keys[0] == cur {
			keys = keys[1:]
		}
		put(cur)
	}
	for _, k := range keys {
		put(k)
	}
	m := 1 << p
	if size := len(enc) - header; size > m {
		regs := make([]byte, 8+m)
		regs[0], regs[1], regs[2], regs[3] = 2, p, 0, 0
		binary.BigEndian.PutUint32(regs[4:], uint32(m))
		var k uint32
		for b := enc[header:]; len(b) > 0; {
			d, w := binary.Uvarint(b)
			b = b[w:]
			k += uint32(d)
			i, r := decodeSparseKey(k, p)
			regs[8+i] = max(regs[8+i], r)
		}
		return regs, true, true
	}
	copy(enc, []byte{2, p, 0, 1, 0, 0, 0, 0})
	binary.BigEndian.PutUint32(enc[8:], uint32(n))
	binary.BigEndian.PutUint32(enc[12:], last)
	binary.BigEndian.PutUint32(enc[16:], uint32(len(enc)-header))
	return enc, false, true
}

// sketchOf decodes the library's encoding enc of a precision p sketch.
func sketchOf(p uint8, enc []byte) (*hyperloglog.Sketch, error) {
	sk, err := hyperloglog.NewSketch(p, true)
	if err != nil {
		return nil, err
	}
	if err := sk.UnmarshalBinary(enc); err != nil {
		return nil, err
	}
	return sk, nil
}

func sortedUnique(keys []uint32) []uint32 {
	if !slices.IsSorted(keys) { // a merged sketch's keys are (no temporary set)
		sortKeys(keys, nil)
	}
	return slices.Compact(keys)
}

// sparseListBytes is the length of the library's compressed list of sorted,
// distinct keys: one uvarint per delta.
func sparseListBytes(keys []uint32) int {
	n := 0
	var last uint32
	for _, k := range keys {
		d := k - last
		last = k
		n += (bits.Len32(d|1) + 6) / 7
	}
	return n
}

// appendSparseKeys appends the keys of the library's version 2 sparse
// encoding (header, tmp set, compressed list of varint deltas) to dst.
func appendSparseKeys(dst []uint32, enc []byte) ([]uint32, bool) {
	if len(enc) < 8 || enc[0] != 2 || enc[3] != 1 {
		return dst, false
	}
	tmp := int(binary.BigEndian.Uint32(enc[4:8]))
	off := 8
	if tmp < 0 || len(enc)-off < 4*tmp+12 {
		return dst, false
	}
	count := int(binary.BigEndian.Uint32(enc[off+4*tmp:]))
	size := int(binary.BigEndian.Uint32(enc[off+4*tmp+8:]))
	if size < 0 || len(enc)-off-4*tmp-12 != size {
		return dst, false
	}
	// MergeMany appends every operand's keys to one slice: grow it at
	// least twofold, since append's growth of a large slice (1.25x) made
	// it reallocate for nearly every operand.
	if need := tmp + min(count, size); cap(dst)-len(dst) < need { // a key takes a byte at least
		dst = slices.Grow(dst, max(need, len(dst)))
	}
	for range tmp {
		dst = append(dst, binary.BigEndian.Uint32(enc[off:]))
		off += 4
	}
	off += 12
	var last uint32
	for i, b := 0, enc[off:]; i < count; i++ {
		d, k := binary.Uvarint(b)
		if k <= 0 || d > math.MaxUint32 {
			return dst, false
		}
		last += uint32(d)
		dst = append(dst, last)
		b = b[k:]
	}
	return dst, true
}

// sparsePrecision is the library's sparse precision p' (2^25 virtual
// buckets).
const sparsePrecision = 25

// encodeSparseKeys returns the library's encoding of sorted, distinct
// sparse keys: sparse while the compressed list fits in 2^p bytes (the
// library's own limit), dense (registers from the decoded keys) beyond.
func encodeSparseKeys(p uint8, keys []uint32) (enc []byte, dense bool) {
	size := sparseListBytes(keys) // sized first: one allocation, no list grown and copied
	m := 1 << p
	dense = size > m
	if dense {
		enc = make([]byte, 8, 8+m)
		enc[0], enc[1], enc[2], enc[3] = 2, p, 0, 0
		binary.BigEndian.PutUint32(enc[4:], uint32(m))
		enc = enc[:8+m]
		regs := enc[8:]
		for _, k := range keys {
			i, r := decodeSparseKey(k, p)
			regs[i] = max(regs[i], r)
		}
	} else {
		var last uint32
		if len(keys) > 0 {
			last = keys[len(keys)-1]
		}
		enc = make([]byte, 0, 20+size)
		enc = append(enc, 2, p, 0, 1, 0, 0, 0, 0)
		enc = binary.BigEndian.AppendUint32(enc, uint32(len(keys)))
		enc = binary.BigEndian.AppendUint32(enc, last)
		enc = binary.BigEndian.AppendUint32(enc, uint32(size))
		last = 0
		for _, k := range keys {
			enc = binary.AppendUvarint(enc, uint64(k-last))
			last = k
		}
	}
	return enc, dense
}

// decodeSparseKey returns the register index and value of a sparse key, as
// the library's decodeHash does: odd keys carry ρ in bits 1..6, even keys
// have it implied by the low bits of their 25-bit index.
func decodeSparseKey(k uint32, p uint8) (uint32, uint8) {
	const pp = sparsePrecision
	if k&1 == 1 {
		return k >> (32 - p), uint8((k>>1)&0x3f) + pp - p
	}
	idx := (k >> (pp - p + 1)) & (1<<p - 1)
	return idx, uint8(bits.LeadingZeros64(uint64(k<<(32-pp+p-1))) - 31)
}
