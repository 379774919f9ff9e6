package sketch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Reservoir keeps a bottom-k sample: of all items offered (merges
// included) it keeps the k with the smallest priority. Unweighted, the
// priority is the caller's 64-bit tag, so the sample is uniform when tags
// are uniform; weighted, it is −ln(U)/weight with U in (0, 1) taken from
// the tag (exponential clocks, equivalent to Efraimidis–Spirakis A-Res), so
// inclusion favours heavy items. Merge is the union keeping the k
// smallest: exact, associative and commutative, so a merged sample is the
// sample of the concatenated stream.
//
// Tags are supplied by the caller so that replays are deterministic: derive
// them from the event's position (for example Hash of the stream position)
// with a uniform hash.
type Reservoir struct {
	k        int
	weighted bool
	pop      uint64
	// heap is a max-heap by (prio, tag, item): the root is the entry the
	// next accepted item evicts.
	heap []resEntry
}

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

func (r *Reservoir) offer(e resEntry, copyItem bool) {
	if len(r.heap) == r.k {
		if !e.less(&r.heap[0], r.weighted) {
			return
		}
		if copyItem {
			e.item = bytes.Clone(e.item)
		}
		r.heap[0] = e
		r.down(0)
		return
	}
	if copyItem {
		e.item = bytes.Clone(e.item)
	}
	if e.item == nil {
		e.item = []byte{}
	}
	r.heap = append(r.heap, e)
	for j := len(r.heap) - 1; j > 0; {
		p := (j - 1) / 2
		if !r.heap[p].less(&r.heap[j], r.weighted) {
			break
		}
		r.heap[p], r.heap[j] = r.heap[j], r.heap[p]
		j = p
	}
}

func (r *Reservoir) down(j int) {
	n := len(r.heap)
	for {
		l := 2*j + 1
		if l >= n {
			return
		}
		s := l
		if rr := l + 1; rr < n && r.heap[l].less(&r.heap[rr], r.weighted) {
			s = rr
		}
		if !r.heap[j].less(&r.heap[s], r.weighted) {
			return
		}
		r.heap[j], r.heap[s] = r.heap[s], r.heap[j]
		j = s
	}
}

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
// tag. The encoding is canonical.
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
	case !res.weighted && m < res.k && uint64(m) != h.n:
		r.fail("%d entries in a reservoir of size %d that saw %d items", m, res.k, h.n)
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
		es = append(es, e)
	}
	r.end("reservoir payload")
	if r.err != nil {
		return nil, r.err
	}
	// Ascending order is a valid min-heap; reverse it into a max-heap.
	slices.Reverse(es)
	res.heap = es
	return res, nil
}
