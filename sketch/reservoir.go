package sketch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Reservoir keeps a bottom-k sample: of all items offered (merges
// included) it keeps the k with the smallest priority, as far as a byte
// budget allows (see Byte budget below). Unweighted, the
// priority is the caller's 64-bit tag, so the sample is uniform when tags
// are uniform; weighted, it is −ln(U)/weight with U in (0, 1) taken from
// the tag (exponential clocks, equivalent to Efraimidis–Spirakis A-Res), so
// inclusion favours heavy items. Merge is the union keeping the k
// smallest (and the lower budget cut): exact, associative and commutative,
// so a merged sample is the sample of the concatenated stream.
//
// Tags are supplied by the caller so that replays are deterministic: derive
// them from the event's position (for example Hash of the stream position)
// with a uniform hash.
//
// # Byte budget
//
// A reservoir also keeps its items within MaxReservoirBytes (the sum of the
// item lengths), so that a pane holding it always fits one store
// transaction. The rule: sort every sampleable item offered by (priority,
// tag, item) and walk from the smallest; the sample is the longest prefix
// with at most k items whose lengths sum to at most MaxReservoirBytes. When
// the budget (not k) ends the prefix, at the item x_j, the reservoir keeps
// the cut: the key (priority, tag) of x_j. The sample is then exactly the
// items whose key is below the cut (items sharing x_j's key are dropped
// with it), it has fewer than k items, and Truncated reports true. When k
// ends the prefix (or nothing was left out) there is no cut: the classic
// bottom-k.
//
// The sample is a prefix in priority order, that is, of a uniformly (or
// weighted) random order of the items, cut at k or where the bytes run
// out. With equal-length items it is exactly a uniform (weighted) sample
// of min(k, ⌊MaxReservoirBytes/length⌋) items. With unequal lengths the
// item that ends the prefix is more often a long one, so long items are
// slightly under-sampled (about one item per sample); among items of one
// length inclusion stays uniform (TestReservoirBudgetUniformWithinLength).
// A prefix of the sample is a sample too.
//
// Mergeable and associative. Let T be all the items of two streams A and B,
// (S_A, c_A) and (S_B, c_B) their states (c = +∞ without a cut) and
// m = min(c_A, c_B). (1) Containment: an item x in the budgeted prefix of T
// is in S_A ∪ S_B. Every item of A below x is below x in T, so the prefix of
// A up to x has no more items and no more bytes than the prefix of T up to
// x: it fits, x is in S_A (or S_B, symmetrically), and x's key is below c_A
// and c_B. (2) The cut is not lost: S_A ∪ S_B also holds every item of T
// below m among T's first k, so the walk over (S_A ∪ S_B) below m sees the
// same first items as the walk over T, and ends the same way; if it runs
// out of items below m with room left, T's walk reaches the item at m,
// which did not fit beside fewer bytes in A (or B), so it does not fit in T
// either: the cut is m. So Merge, which takes the ceiling m and offers the
// other side's items one by one, gives exactly the state of the
// concatenated stream: merge(a, b) encodes to the same bytes as a
// reservoir fed a's items then b's (TestReservoirBudgetMergeExact). The
// argument assumes distinct keys, which tags derived from stream positions
// give; items with equal (priority, tag) (a replayed event, or a 2^−64 tag
// collision) that straddle a cut are all dropped, which may differ between
// merge orders but is still a sample within the budget.
type Reservoir struct {
	k        int
	weighted bool
	pop      uint64
	// heap is a max-heap by (prio, tag, item): the root is the entry the
	// next accepted item evicts.
	heap []resEntry
	// bytes is the sum of the item lengths in heap (≤ MaxReservoirBytes).
	bytes int
	// cut, when hasCut, is the key of the first item left out for the
	// byte budget: every item whose key is ≥ cut is out (and len(heap) < k).
	hasCut bool
	cut    resEntry // prio and tag only
}

// MaxReservoirBytes is the byte budget of a reservoir: the sum of the
// lengths of its sampled items never exceeds it (see Reservoir). With at
// most 10,000 entries of 19 bytes of framing each, an encoded reservoir is
// at most MaxReservoirBytes + MaxReservoirOverhead bytes.
const MaxReservoirBytes = 256 << 10

// MaxReservoirOverhead bounds the encoding of a reservoir of size k beyond
// its item bytes: the envelope (header, params, lengths, CRC: < 64 bytes),
// the entry count, the cut (16 bytes) and, per entry, the tag, the weighted
// priority and a 3-byte item length (items are ≤ MaxReservoirBytes < 2^21).
func MaxReservoirOverhead(k int) int { return 128 + k*(8+8+3) }

type resEntry struct {
	prio float64 // tag (exactly, as float64 order is not used) when unweighted
	tag  uint64
	item []byte
}

// NewReservoir returns an empty reservoir of size 1..10000 (0 takes the
// default 32).
func NewReservoir(size int, weighted bool) (*Reservoir, error) {
	p := Params{Kind: KindReservoir, Size: size, Weighted: weighted}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Reservoir{k: p.Normalize().Size, weighted: weighted}, nil
}

// Kind returns KindReservoir.
func (r *Reservoir) Kind() Kind { return KindReservoir }

// Params returns the normalized parameters.
func (r *Reservoir) Params() Params {
	return Params{Kind: KindReservoir, Size: r.k, Weighted: r.weighted}
}

// Count is the population: items offered, merges included.
func (r *Reservoir) Count() uint64 { return r.pop }

// Population is the number of items offered, merges included.
func (r *Reservoir) Population() uint64 { return r.pop }

// priority maps a tag and weight to the priority; ok is false when the item
// can never be sampled (weighted with a weight that is not > 0 or that
// makes the priority non-finite).
func priority(tag uint64, weight float64) (float64, bool) {
	u := (float64(tag>>11) + 0.5) / (1 << 53) // in (0, 1)
	p := -math.Log(u) / weight
	return p, weight > 0 && isFinite(p)
}

// keyLess orders entries by key: priority (when weighted), then tag.
func (a *resEntry) keyLess(b *resEntry, weighted bool) bool {
	if weighted && a.prio != b.prio {
		return a.prio < b.prio
	}
	return a.tag < b.tag
}

func (a *resEntry) sameKey(b *resEntry, weighted bool) bool {
	return a.tag == b.tag && (!weighted || a.prio == b.prio)
}

// less orders entries by priority, then tag, then item bytes.
func (a *resEntry) less(b *resEntry, weighted bool) bool {
	if weighted && a.prio != b.prio {
		return a.prio < b.prio
	}
	if a.tag != b.tag {
		return a.tag < b.tag
	}
	return bytes.Compare(a.item, b.item) < 0
}

// Add offers one item. weight is ignored unless the reservoir is weighted;
// weighted items whose weight is not > 0 are counted but never sampled. The
// item is copied only if it is accepted.
func (r *Reservoir) Add(tag uint64, item []byte, weight float64) {
	r.pop++
	e := resEntry{tag: tag, item: item}
	if r.weighted {
		var ok bool
		if e.prio, ok = priority(tag, weight); !ok {
			return
		}
	}
	r.offer(e, true)
}

// offer merges the one-item stream {e} into r (see Reservoir): it enters
// if it is below the cut and, when r holds k items, below the largest;
// then the largest items leave while the budget is exceeded, and the last
// to leave becomes the cut.
func (r *Reservoir) offer(e resEntry, copyItem bool) {
	if r.hasCut && !e.keyLess(&r.cut, r.weighted) {
		return
	}
	if len(r.heap) == r.k && !e.less(&r.heap[0], r.weighted) {
		return
	}
	if copyItem {
		e.item = bytes.Clone(e.item)
	}
	if e.item == nil {
		e.item = []byte{}
	}
	if len(r.heap) == r.k {
		// e replaces the largest, which Size (not the budget) leaves out.
		r.bytes += len(e.item) - len(r.heap[0].item)
		r.heap[0] = e
		r.down(0)
	} else {
		r.push(e)
	}
	r.enforce()
	if len(r.heap) == r.k {
		// The k items below the cut fit: the walk stops at k before it.
		r.hasCut = false
	}
}

// enforce removes the largest entries while the items exceed the budget;
// the last removed becomes the cut, and entries sharing its key go too.
func (r *Reservoir) enforce() {
	if r.bytes <= MaxReservoirBytes {
		return
	}
	var last resEntry
	for r.bytes > MaxReservoirBytes {
		last = r.popMax()
	}
	for len(r.heap) > 0 && r.heap[0].sameKey(&last, r.weighted) {
		r.popMax()
	}
	r.hasCut, r.cut = true, resEntry{prio: last.prio, tag: last.tag}
}

// ceil merges a stream whose state is (no items, cut c) into r: entries
// with a key ≥ c leave and c becomes the cut, unless r already has a
// lower cut or holds k items below c.
func (r *Reservoir) ceil(c resEntry) {
	if r.hasCut && !c.keyLess(&r.cut, r.weighted) {
		return
	}
	if !r.hasCut && len(r.heap) == r.k && r.heap[0].keyLess(&c, r.weighted) {
		return
	}
	for len(r.heap) > 0 && !r.heap[0].keyLess(&c, r.weighted) {
		r.popMax()
	}
	r.hasCut, r.cut = true, resEntry{prio: c.prio, tag: c.tag}
}

// resHeap is the entries as a heapOrder: largest at the root.
type resHeap struct{ r *Reservoir }

func (h resHeap) len() int             { return len(h.r.heap) }
func (h resHeap) before(i, j int) bool { return h.r.heap[j].less(&h.r.heap[i], h.r.weighted) }
func (h resHeap) swap(i, j int)        { h.r.heap[i], h.r.heap[j] = h.r.heap[j], h.r.heap[i] }

func (r *Reservoir) push(e resEntry) {
	r.bytes += len(e.item)
	r.heap = append(r.heap, e)
	heapUp(resHeap{r}, len(r.heap)-1)
}

// popMax removes and returns the largest entry.
func (r *Reservoir) popMax() resEntry {
	n := len(r.heap) - 1
	top := r.heap[0]
	r.heap[0] = r.heap[n]
	r.heap[n] = resEntry{}
	r.heap = r.heap[:n]
	if n > 0 {
		r.down(0)
	}
	r.bytes -= len(top.item)
	return top
}

func (r *Reservoir) down(j int) { heapDown(resHeap{r}, j) }

// sorted returns the entries in ascending priority order (ascending tag
// when unweighted).
func (r *Reservoir) sorted() []resEntry {
	es := slices.Clone(r.heap)
	slices.SortFunc(es, func(a, b resEntry) int {
		if a.less(&b, r.weighted) {
			return -1
		}
		if b.less(&a, r.weighted) {
			return 1
		}
		return 0
	})
	return es
}

// Sample returns the sampled items in ascending priority order, which is
// ascending tag order when unweighted: any prefix is itself a sample of
// that size. The slices are the reservoir's own: do not modify them.
func (r *Reservoir) Sample() [][]byte {
	es := r.sorted()
	out := make([][]byte, len(es))
	for i := range es {
		out[i] = es[i].item
	}
	return out
}

// Bytes is the sum of the lengths of the sampled items, at most
// MaxReservoirBytes.
func (r *Reservoir) Bytes() int { return r.bytes }

// Truncated reports whether the byte budget, rather than the size, limited
// the sample: an item that would have been sampled (its priority is below
// those left out) did not fit in MaxReservoirBytes, so the sample holds
// fewer than min(Size, sampleable items) items. It is false when the
// sample holds Size items or every sampleable item offered.
func (r *Reservoir) Truncated() bool { return r.hasCut }

// Tags returns the tags of Sample, in the same order.
func (r *Reservoir) Tags() []uint64 {
	es := r.sorted()
	out := make([]uint64, len(es))
	for i := range es {
		out[i] = es[i].tag
	}
	return out
}

// Merge folds another *Reservoir with the same size and weighting into r.
func (r *Reservoir) Merge(other Sketch) error {
	o, ok := other.(*Reservoir)
	if !ok || o == nil || o.k != r.k || o.weighted != r.weighted {
		return incompatible(r, other)
	}
	if r.pop+o.pop < r.pop {
		return fmt.Errorf("sketch: reservoir merge: %w", ErrOverflow)
	}
	if o == r {
		o = r.Clone().(*Reservoir)
	}
	r.pop += o.pop
	if o.hasCut {
		r.ceil(o.cut)
	}
	for _, e := range o.heap {
		r.offer(e, true)
	}
	return nil
}

// Clone returns an independent copy.
func (r *Reservoir) Clone() Sketch {
	c := *r
	c.heap = make([]resEntry, len(r.heap), max(len(r.heap), 1))
	for i, e := range r.heap {
		e.item = bytes.Clone(e.item)
		if e.item == nil {
			e.item = []byte{}
		}
		c.heap[i] = e
	}
	return &c
}

// Size is the approximate heap footprint in bytes.
func (r *Reservoir) Size() int {
	s := 64 + 48*cap(r.heap)
	for _, e := range r.heap {
		s += cap(e.item)
	}
	return s
}

// AppendBinary appends the envelope. Payload: uvarint m ≤ k, then m ×
// {u64 tag, uvarint len, item} in ascending priority order (ascending tag
// when unweighted); weighted entries carry their f64 priority after the
// tag. A truncated reservoir (see Truncated) then appends its cut: u64 tag
// and, when weighted, f64 priority; an untruncated one appends nothing, so
// its bytes are those of the format before the budget. The encoding is
// canonical.
func (r *Reservoir) AppendBinary(dst []byte) ([]byte, error) {
	return appendEnvelope(dst, KindReservoir, hashNone, r.pop, r.Params(), func(b []byte) ([]byte, error) {
		es := r.sorted()
		b = binary.AppendUvarint(b, uint64(len(es)))
		for _, e := range es {
			b = binary.LittleEndian.AppendUint64(b, e.tag)
			if r.weighted {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.prio))
			}
			b = binary.AppendUvarint(b, uint64(len(e.item)))
			b = append(b, e.item...)
		}
		if r.hasCut {
			b = binary.LittleEndian.AppendUint64(b, r.cut.tag)
			if r.weighted {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.cut.prio))
			}
		}
		return b, nil
	})
}

func decodeReservoir(h header, params, payload []byte) (*Reservoir, *DecodeError) {
	p, derr := parseParams(KindReservoir, params)
	if derr != nil {
		return nil, derr
	}
	res := &Reservoir{k: p.Size, weighted: p.Weighted, pop: h.n}
	r := reader{b: payload}
	m := r.count("entries", 9)
	switch {
	case r.err != nil:
	case m > res.k:
		r.fail("%d entries exceed the size %d", m, res.k)
	case uint64(m) > h.n:
		r.fail("%d entries exceed the population %d", m, h.n)
	}
	es := make([]resEntry, 0, m)
	for i := 0; i < m && r.err == nil; i++ {
		e := resEntry{tag: r.u64("tag")}
		if res.weighted {
			e.prio = r.f64("priority")
			if r.err == nil && !(isFinite(e.prio) && e.prio >= 0) {
				r.fail("entry %d: bad priority %g", i, e.prio)
			}
		}
		e.item = bytes.Clone(r.bytes("item"))
		if e.item == nil {
			e.item = []byte{}
		}
		if r.err == nil && i > 0 && e.less(&es[i-1], res.weighted) {
			r.fail("entry %d: not ascending", i)
		}
		res.bytes += len(e.item)
		es = append(es, e)
	}
	if r.err == nil && r.off < len(r.b) {
		// The cut of a reservoir truncated by its byte budget.
		res.hasCut = true
		res.cut.tag = r.u64("cut tag")
		if res.weighted {
			res.cut.prio = r.f64("cut priority")
			if r.err == nil && !(isFinite(res.cut.prio) && res.cut.prio >= 0) {
				r.fail("bad cut priority %g", res.cut.prio)
			}
		}
		switch {
		case r.err != nil:
		case m >= res.k:
			r.fail("a cut with %d entries in a reservoir of size %d", m, res.k)
		case uint64(m) >= h.n:
			r.fail("a cut with %d entries and a population of %d", m, h.n)
		case res.bytes > MaxReservoirBytes:
			r.fail("%d item bytes with a cut exceed the budget %d", res.bytes, MaxReservoirBytes)
		case m > 0 && !es[m-1].keyLess(&res.cut, res.weighted):
			r.fail("the cut is not above the last entry")
		}
	} else if r.err == nil && !res.weighted && m < res.k && uint64(m) != h.n {
		r.fail("%d entries in a reservoir of size %d that saw %d items", m, res.k, h.n)
	}
	r.end("reservoir payload")
	if r.err != nil {
		return nil, r.err
	}
	// Ascending order is a valid min-heap; reverse it into a max-heap.
	slices.Reverse(es)
	res.heap = es
	// A blob written before the byte budget may exceed it: it decodes with
	// the budget applied (its longest prefix that fits, and a cut).
	res.enforce()
	return res, nil
}
