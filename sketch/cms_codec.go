package sketch

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"slices"
)

// AppendBinary appends the envelope. Payload: u8 mode (0 exact, 1 table);
// exact: uvarint E, E × {uvarint len, item, uvarint count} sorted by item;
// table: w·d uvarint counters row-major, uvarint C, C × {uvarint len, item,
// uvarint est} sorted by item. The encoding is canonical.
func (c *CountMin) AppendBinary(dst []byte) ([]byte, error) {
	return appendEnvelope(dst, KindCMS, hashXXH64, c.n, c.Params(), func(b []byte) ([]byte, error) {
		if c.table == nil {
			b = append(b, 0)
			keys := make([]string, 0, len(c.exact))
			for k := range c.exact {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				b = binary.AppendUvarint(b, uint64(len(k)))
				b = append(b, k...)
				b = binary.AppendUvarint(b, c.counts[c.exact[k]])
			}
			return b, nil
		}
		b = append(b, 1)
		for _, v := range c.table {
			b = binary.AppendUvarint(b, uint64(v))
		}
		cs := slices.Clone(c.cands)
		slices.SortFunc(cs, func(a, b cand) int { return cmp.Compare(a.item, b.item) })
		b = binary.AppendUvarint(b, uint64(len(cs)))
		for _, k := range cs {
			b = binary.AppendUvarint(b, uint64(len(k.item)))
			b = append(b, k.item...)
			b = binary.AppendUvarint(b, k.est)
		}
		return b, nil
	})
}

func decodeCountMin(h header, params, payload []byte) (*CountMin, *DecodeError) {
	p, derr := parseParams(KindCMS, params)
	if derr != nil {
		return nil, derr
	}
	c, err := NewCountMin(p.Epsilon, p.Delta, p.TopK)
	if err != nil {
		return nil, corrupt(-1, "cms params: %v", err)
	}
	c.n = h.n
	r := reader{b: payload}
	switch mode := r.u8("mode"); {
	case r.err != nil:
	case mode == 0:
		c.decodeExact(&r, payload)
	case mode == 1:
		c.decodeTable(&r, payload)
	default:
		r.fail("unknown mode %d", mode)
	}
	r.end("cms payload")
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

// decodeExact reads the exact mode's items and counts (strictly
// ascending, none zero, summing to n, within the table's budget).
func (c *CountMin) decodeExact(r *reader, payload []byte) {
	e := r.count("exact entries", 2)
	if e > 0 { // the items fit in what is left of the payload: one arena
		c.arena = make([]byte, 0, len(payload)-r.off)
		// Size the map and counts once instead of growing them entry by
		// entry; no more than the table budget admits, past which the
		// sketch is refused below anyway.
		n := min(e, c.tableBytes()/exactEntryBytes+1)
		c.exact, c.counts = make(map[string]int32, n), make([]uint64, 0, n)
	}
	var sum uint64
	var prev []byte
	for i := 0; i < e && r.err == nil; i++ {
		item := r.bytes("item")
		n := r.uvarint("count")
		if r.err != nil {
			break
		}
		if i > 0 && bytes.Compare(prev, item) >= 0 {
			r.fail("exact items not strictly ascending")
			break
		}
		if n == 0 {
			r.fail("zero count")
			break
		}
		prev = item
		c.addExact(c.intern(item), n)
		sum = satAdd64(sum, n)
	}
	if r.err == nil && sum != c.n {
		r.fail("exact counts sum to %d, header n is %d", sum, c.n)
	}
	if r.err == nil && c.exactBytes > c.tableBytes() {
		r.fail("exact map of %d bytes exceeds the %d-byte table budget", c.exactBytes, c.tableBytes())
	}
}

// decodeTable reads the table mode's counters (no row summing past n),
// then its candidates.
func (c *CountMin) decodeTable(r *reader, payload []byte) {
	cells := int(c.w) * c.d
	if len(payload)-r.off < cells {
		r.fail("table of %d counters cannot fit in %d bytes", cells, len(payload)-r.off)
		return
	}
	c.exact, c.counts = nil, nil
	c.table = make([]uint32, cells)
	for i := range c.table {
		v := r.uvarint("counter")
		if v > math.MaxUint32 {
			r.fail("counter %d exceeds uint32", v)
		}
		c.table[i] = uint32(v)
	}
	for row := 0; row < c.d && r.err == nil; row++ {
		var sum uint64
		for _, v := range c.table[row*int(c.w) : (row+1)*int(c.w)] {
			sum += uint64(v)
		}
		if sum > c.n {
			r.fail("row %d sums to %d, more than n=%d", row, sum, c.n)
		}
	}
	c.decodeCandidates(r)
}

// decodeCandidates reads the heavy-hitter candidates (strictly ascending,
// within the capacity, each estimate within the table's) and rebuilds
// their heap.
func (c *CountMin) decodeCandidates(r *reader) {
	k := r.count("candidates", 2)
	if r.err == nil && k > c.capacity() {
		r.fail("%d candidates exceed the capacity %d", k, c.capacity())
	}
	cs := make([]cand, 0, k)
	var prev []byte
	for i := 0; i < k && r.err == nil; i++ {
		item := r.bytes("candidate")
		est := r.uvarint("candidate estimate")
		if r.err != nil {
			break
		}
		if i > 0 && bytes.Compare(prev, item) >= 0 {
			r.fail("candidates not strictly ascending")
			break
		}
		prev = item
		hs := Hash(item)
		if est == 0 || est > c.estimate(hs) {
			r.fail("candidate estimate %d outside [1, %d]", est, c.estimate(hs))
			break
		}
		cs = append(cs, cand{item: string(item), hash: hs, est: est})
	}
	if r.err == nil {
		// Rebuild the heap from the stored estimates (not re-estimated:
		// that is the state the encoder had).
		c.cands = cs
		c.candIdx = make(map[string]int, len(cs))
		for i := range cs {
			c.candIdx[cs[i].item] = i
		}
		heapInit(candHeap{c})
	}
}
