package sketch

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// CountMin estimates item frequencies and keeps heavy-hitter candidates: a
// count-min sketch with conservative update (w = next power of two of
// ⌈e/ε⌉ columns, d = ⌈ln(1/δ)⌉ rows, saturating uint32 counters,
// Kirsch–Mitzenmacher row indexes from the one 64-bit Hash), plus the
// m = max(4·TopK, 16) items with the highest estimates (of at most
// MaxCandidateBytes/m bytes each: see MaxCandidateBytes).
//
// It starts as an exact item→count map and answers exactly (ErrorBound 0)
// until the map's approximate size (len(item)+exactEntryBytes per item)
// would exceed the table's 4·w·d bytes; it then moves the counts into the
// table with plain (linear) count-min adds, in item byte order, and keeps
// updating conservatively. Merges add counters (an exact operand is added
// plainly), take the union of the candidates, re-estimate each on the merged
// table and keep the top m; exact+exact stays exact while it fits.
type CountMin struct {
	eps, delta float64 // as requested (the params)
	topK       int
	w          uint32
	shift      uint32 // 32 - log2(w)
	d          int
	n          uint64 // total weight, saturating

	exact      map[string]int32 // exact mode when table == nil: item -> index in counts
	counts     []uint64
	exactBytes int
	// arena holds the bytes of exact items added or decoded here, so that a
	// new item is not an allocation of its own. Its filled part is never
	// written again, so items may alias it after a Clone or Merge; the free
	// part belongs to this sketch only (Clone does not share it).
	arena []byte

	table   []uint32 // d rows of w counters
	cands   []cand   // min-heap by (est, reverse item): the root is the weakest
	candIdx map[string]int
}

type cand struct {
	item string
	hash uint64
	est  uint64 // table estimate as of its last update
}

// MaxCandidateBytes bounds the item bytes of the heavy-hitter candidates
// kept in table mode: each of the m = max(4·TopK, 16) candidates is at
// most CountMinCandidateItemBytes(TopK) = MaxCandidateBytes/m bytes long
// (16 KiB at TopK ≤ 4, 6,553 at the default 10, 65 at 1000). A longer item
// is counted in the table (Estimate answers for it) but never becomes a
// candidate, so TopK, once the sketch has left exact mode, does not list
// it. The encoded candidates are then at most MaxCandidateBytes + 12·m
// bytes, so that a pane fits one store transaction. Exact mode keeps and
// ranks every item (its bytes are bounded by the table's). Blobs written
// before this bound decode with their candidates as they are; the next
// merge drops the long ones.
const MaxCandidateBytes = 256 << 10

// CountMinCandidateItemBytes is the longest item a count-min sketch with
// this top-k (0 takes the default) keeps as a heavy-hitter candidate.
func CountMinCandidateItemBytes(topK int) int {
	if topK == 0 {
		topK = DefaultTopK
	}
	return MaxCandidateBytes / max(4*topK, 16)
}

// exactEntryBytes is the accounted overhead of one exact-mode entry (map
// slot, string header, count).
const exactEntryBytes = 48

// FrequencyEstimate is an item's estimated count with its bounds.
type FrequencyEstimate struct {
	Item     []byte
	Estimate uint64
	// Lower and Upper bound the true count: Upper = Estimate (count-min
	// never underestimates), Lower = Estimate - ErrorBound, at least 0.
	Lower, Upper uint64
	// ErrorBound is ⌈εN⌉ with the actual ε = e/w; it holds with
	// probability Confidence. Both are 0 and 1 while the sketch is exact.
	ErrorBound uint64
	Confidence float64 // 1 - δ, with the actual δ = e^-d
}

// cmsDims returns the table width (a power of two) and depth for ε, δ.
func cmsDims(eps, delta float64) (w, d int) {
	w = 1
	for float64(w) < math.Ceil(math.E/eps) {
		w <<= 1
	}
	return w, int(math.Ceil(math.Log(1 / delta)))
}

// CountMinTableBytes is the size of the counter table of a count-min sketch
// for epsilon and delta (zero values take the defaults): 4 bytes × w × d,
// with w the power of two at least e/ε and d = ⌈ln(1/δ)⌉. A sketch in table
// mode encodes to about this plus its candidates.
func CountMinTableBytes(epsilon, delta float64) int {
	p := Params{Kind: KindCMS, Epsilon: epsilon, Delta: delta}.Normalize()
	w, d := cmsDims(p.Epsilon, p.Delta)
	return 4 * w * d
}

func log2(w int) int { return bits.TrailingZeros(uint(w)) }

// NewCountMin returns an empty count-min sketch (zero arguments take the
// defaults).
func NewCountMin(epsilon, delta float64, topK int) (*CountMin, error) {
	p := Params{Kind: KindCMS, Epsilon: epsilon, Delta: delta, TopK: topK}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.Normalize()
	w, d := cmsDims(p.Epsilon, p.Delta)
	return &CountMin{
		eps: p.Epsilon, delta: p.Delta, topK: p.TopK,
		w: uint32(w), shift: uint32(32 - log2(w)), d: d,
		exact: map[string]int32{},
	}, nil
}

// Kind returns KindCMS.
func (c *CountMin) Kind() Kind { return KindCMS }

// Params returns the normalized parameters.
func (c *CountMin) Params() Params {
	return Params{Kind: KindCMS, Epsilon: c.eps, Delta: c.delta, TopK: c.topK}
}

// Count is the total weight added, merges included (= Total).
func (c *CountMin) Count() uint64 { return c.n }

// Total is the total weight N added, merges included.
func (c *CountMin) Total() uint64 { return c.n }

// Epsilon is the actual ε = e/w after rounding w up to a power of two.
func (c *CountMin) Epsilon() float64 { return math.E / float64(c.w) }

// Delta is the actual δ = e^-d.
func (c *CountMin) Delta() float64 { return math.Exp(-float64(c.d)) }

// Exact reports whether the sketch still counts exactly.
func (c *CountMin) Exact() bool { return c.table == nil }

func (c *CountMin) capacity() int { return max(4*c.topK, 16) }

// maxCandItem is the longest item kept as a candidate.
func (c *CountMin) maxCandItem() int { return MaxCandidateBytes / c.capacity() }

func (c *CountMin) tableBytes() int { return 4 * int(c.w) * c.d }

func satAdd64(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

func satAdd32(a uint32, b uint64) uint32 {
	if b >= math.MaxUint32 || uint64(a)+b >= math.MaxUint32 {
		return math.MaxUint32
	}
	return a + uint32(b)
}

// Add counts item count times. hash must be Hash(item) (exact mode does
// not read it: addItem passes 0 there). The item is copied only when the
// sketch keeps it (a new exact entry or a new candidate); in table mode an
// update of a known candidate or of a non-candidate does not allocate.
func (c *CountMin) Add(hash uint64, item []byte, count uint64) {
	if count == 0 {
		return
	}
	c.n = satAdd64(c.n, count)
	if c.table == nil {
		if i, ok := c.exact[string(item)]; ok {
			c.counts[i] = satAdd64(c.counts[i], count)
			return
		}
		c.addExact(c.intern(item), count)
		if c.exactBytes > c.tableBytes() {
			c.promote()
		}
		return
	}
	// Conservative update: raise each row's cell to at most min + count.
	h1, h2 := uint32(hash), uint32(hash>>32)|1
	m := uint32(math.MaxUint32)
	for i, off := 0, 0; i < c.d; i, off = i+1, off+int(c.w) {
		m = min(m, c.table[off+int(c.col(h1, h2, i))])
	}
	v := satAdd32(m, count)
	for i, off := 0, 0; i < c.d; i, off = i+1, off+int(c.w) {
		p := &c.table[off+int(c.col(h1, h2, i))]
		*p = max(*p, v)
	}
	c.offer(item, hash, uint64(v))
}

// addItem counts item once, hashing it only in table mode: exact mode
// looks items up by their bytes (and promote hashes them).
func (c *CountMin) addItem(item []byte) {
	var h uint64
	if c.table != nil {
		h = Hash(item)
	}
	c.Add(h, item, 1)
}

// addExact adds a new exact item (not yet in the map).
func (c *CountMin) addExact(item string, n uint64) {
	c.exact[item] = int32(len(c.counts))
	c.counts = append(c.counts, n)
	c.exactBytes += len(item) + exactEntryBytes
}

// intern returns item as a string whose bytes live in the arena.
func (c *CountMin) intern(item []byte) string {
	if len(item) == 0 {
		return ""
	}
	if cap(c.arena)-len(c.arena) < len(item) {
		c.arena = make([]byte, 0, max(len(item), min(64<<10, max(1<<10, 2*cap(c.arena)))))
	}
	n := len(c.arena)
	c.arena = append(c.arena, item...)
	return unsafe.String(&c.arena[n], len(item))
}

// col is the column of row i: Kirsch–Mitzenmacher g_i = h1 + i·h2 (mod
// 2^32), mapped to [0, w) by a per-row multiply-shift. Masking the low bits
// instead would make two items that collide in rows 0 and 1 collide in every
// row (probability 1/w², enough for a phantom heavy hitter in about half of
// the 1e6-event Zipf streams tested); the multiply-shift makes rows
// collide nearly independently.
func (c *CountMin) col(h1, h2 uint32, i int) uint32 {
	m := uint32((0x9E3779B97F4A7C15*uint64(i+1))>>32) | 1
	return ((h1 + uint32(i)*h2) * m) >> c.shift
}

// estimate is the table estimate of a hash.
func (c *CountMin) estimate(hash uint64) uint64 {
	h1, h2 := uint32(hash), uint32(hash>>32)|1
	m := uint32(math.MaxUint32)
	for i, off := 0, 0; i < c.d; i, off = i+1, off+int(c.w) {
		m = min(m, c.table[off+int(c.col(h1, h2, i))])
	}
	return uint64(m)
}

// plainAdd adds count to the item's cell in every row (linear count-min).
func (c *CountMin) plainAdd(hash, count uint64) {
	h1, h2 := uint32(hash), uint32(hash>>32)|1
	for i, off := 0, 0; i < c.d; i, off = i+1, off+int(c.w) {
		p := &c.table[off+int(c.col(h1, h2, i))]
		*p = satAdd32(*p, count)
	}
}

// promote moves the exact counts into a new table with plain adds and makes
// the top items the candidates. Plain adds are linear, so the result does
// not depend on the order of the items.
func (c *CountMin) promote() {
	c.table = make([]uint32, int(c.w)*c.d)
	cs := make([]cand, 0, len(c.exact))
	for item, i := range c.exact {
		h := HashString(item)
		c.plainAdd(h, c.counts[i])
		cs = append(cs, cand{item: item, hash: h})
	}
	for i := range cs {
		cs[i].est = c.estimate(cs[i].hash)
	}
	c.setCands(cs)
	// Copy the kept candidates out of the arena so that it can go.
	for i := range c.cands {
		c.cands[i].item = strings.Clone(c.cands[i].item)
		c.candIdx[c.cands[i].item] = i
	}
	c.exact, c.counts, c.exactBytes, c.arena = nil, nil, 0, nil
}

// Merge folds another *CountMin with the same parameters into c.
func (c *CountMin) Merge(other Sketch) error {
	o, ok := other.(*CountMin)
	if !ok || o == nil || o.Params() != c.Params() {
		return incompatible(c, other)
	}
	if o == c {
		o = c.Clone().(*CountMin)
	}
	c.n = satAdd64(c.n, o.n)
	if c.table == nil && o.table == nil {
		for item, j := range o.exact {
			if i, ok := c.exact[item]; ok {
				c.counts[i] = satAdd64(c.counts[i], o.counts[j])
				continue
			}
			c.addExact(item, o.counts[j])
		}
		if c.exactBytes > c.tableBytes() {
			c.promote()
		}
		return nil
	}
	if c.table == nil {
		c.promote()
	}
	cs := slices.Grow(c.cands, len(o.cands)+len(o.exact))
	if o.table == nil {
		for item, j := range o.exact {
			h := HashString(item)
			c.plainAdd(h, o.counts[j])
			if _, dup := c.candIdx[item]; !dup {
				cs = append(cs, cand{item: item, hash: h})
			}
		}
	} else {
		for i, v := range o.table {
			c.table[i] = satAdd32(c.table[i], uint64(v))
		}
		for _, k := range o.cands {
			if _, dup := c.candIdx[k.item]; !dup {
				cs = append(cs, k)
			}
		}
	}
	for i := range cs {
		cs[i].est = c.estimate(cs[i].hash)
	}
	c.setCands(cs)
	return nil
}

// MergeMany folds others into c as repeated Merge would, but collects the
// heavy-hitter candidates of all of them and ranks them once, instead of
// once per merge. The counts are the same as those of repeated Merge (table
// adds are linear); the candidates are at least as good, because none is
// dropped by an intermediate ranking. On error c is unchanged.
func (c *CountMin) MergeMany(others ...*CountMin) error {
	for _, o := range others {
		if o == nil || o.Params() != c.Params() {
			return incompatible(c, o)
		}
	}
	// cs and seen are scratch (scratch.go): setCands keeps a copy.
	csV := cmsCands.get()
	cs := *csV
	var seen map[string]bool
	defer func() {
		*csV = cs
		cmsCands.put(csV)
		putSeen(seen)
	}()
	for _, o := range others {
		if o == c {
			o = c.Clone().(*CountMin)
		}
		if c.table == nil && o.table == nil {
			if err := c.Merge(o); err != nil {
				return err
			}
			continue
		}
		if c.table == nil {
			c.promote()
		}
		if seen == nil {
			cs = append(cs[:0], c.cands...)
			seen = getSeen()
			for _, k := range cs {
				seen[k.item] = true
			}
		}
		c.n = satAdd64(c.n, o.n)
		if o.table == nil {
			for item, j := range o.exact {
				h := HashString(item)
				c.plainAdd(h, o.counts[j])
				if !seen[item] {
					seen[item] = true
					cs = append(cs, cand{item: item, hash: h})
				}
			}
			continue
		}
		for i, v := range o.table {
			c.table[i] = satAdd32(c.table[i], uint64(v))
		}
		for _, k := range o.cands {
			if !seen[k.item] {
				seen[k.item] = true
				cs = append(cs, k)
			}
		}
	}
	if seen != nil {
		for i := range cs {
			cs[i].est = c.estimate(cs[i].hash)
		}
		c.setCands(cs)
	}
	return nil
}

// cmsCands and cmsSeen hold MergeMany's candidates and their set
// (scratch.go); a set that grew past maxPooledSeen items is let go.
var (
	cmsCands = newPointerScratchPool[cand]()
	cmsSeen  sync.Pool
)

const maxPooledSeen = 1 << 14

func getSeen() map[string]bool {
	if m, ok := cmsSeen.Get().(map[string]bool); ok {
		return m
	}
	return make(map[string]bool)
}

func putSeen(m map[string]bool) {
	if m == nil || len(m) > maxPooledSeen {
		return
	}
	clear(m)
	cmsSeen.Put(m)
}

// Estimate returns the item's estimated count.
func (c *CountMin) Estimate(item []byte) FrequencyEstimate {
	if c.table == nil {
		var n uint64
		if i, ok := c.exact[string(item)]; ok {
			n = c.counts[i]
		}
		return FrequencyEstimate{Item: item, Estimate: n, Lower: n, Upper: n, Confidence: 1}
	}
	return c.bounds(item, c.estimate(Hash(item)))
}

func (c *CountMin) bounds(item []byte, est uint64) FrequencyEstimate {
	eb := uint64(math.Ceil(c.Epsilon() * float64(c.n)))
	f := FrequencyEstimate{Item: item, Estimate: est, Upper: est, ErrorBound: eb, Confidence: 1 - c.Delta()}
	if est >= math.MaxUint32 {
		f.Upper = c.n // a saturated counter bounds nothing better
	}
	if est > eb {
		f.Lower = est - eb
	}
	return f
}

// TopK returns up to k heavy hitters, by estimate descending then item
// bytes ascending. While exact it ranks every item; after that it ranks the
// candidates (re-estimated on the table), so k above max(4·TopK, 16)
// returns at most that many.
func (c *CountMin) TopK(k int) []FrequencyEstimate {
	if k <= 0 {
		return nil
	}
	var out []FrequencyEstimate
	if c.table == nil {
		out = make([]FrequencyEstimate, 0, len(c.exact))
		for item, i := range c.exact {
			n := c.counts[i]
			out = append(out, FrequencyEstimate{Item: []byte(item), Estimate: n, Lower: n, Upper: n, Confidence: 1})
		}
	} else {
		out = make([]FrequencyEstimate, 0, len(c.cands))
		for _, k := range c.cands {
			out = append(out, c.bounds([]byte(k.item), c.estimate(k.hash)))
		}
	}
	slices.SortFunc(out, func(a, b FrequencyEstimate) int {
		if a.Estimate != b.Estimate {
			return cmp.Compare(b.Estimate, a.Estimate)
		}
		return bytes.Compare(a.Item, b.Item)
	})
	return out[:min(k, len(out))]
}

// Clone returns an independent copy.
func (c *CountMin) Clone() Sketch {
	d := *c
	d.arena = nil
	if c.exact != nil {
		d.exact = maps.Clone(c.exact)
		d.counts = slices.Clone(c.counts)
	}
	d.table = slices.Clone(c.table)
	d.cands = slices.Clone(c.cands)
	if c.candIdx != nil {
		d.candIdx = make(map[string]int, len(c.candIdx))
		for k, v := range c.candIdx {
			d.candIdx[k] = v
		}
	}
	return &d
}

// Size is the approximate heap footprint in bytes: the struct, in exact
// mode the map, counts and item bytes (with the arena's free part), in
// table mode the table and the candidates with their index.
func (c *CountMin) Size() int {
	s := heapsize.Class(int64(unsafe.Sizeof(*c)))
	if c.table == nil {
		items := c.exactBytes - exactEntryBytes*len(c.exact) + cap(c.arena) - len(c.arena)
		s += heapsize.Map(len(c.exact), unsafe.Sizeof("")+4) + heapsize.Class(8*int64(cap(c.counts))) + int64(items)
		return int(s)
	}
	s += heapsize.Class(4*int64(len(c.table))) + heapsize.Class(int64(unsafe.Sizeof(cand{}))*int64(cap(c.cands))) +
		heapsize.Map(len(c.candIdx), unsafe.Sizeof("")+8)
	for _, k := range c.cands {
		s += heapsize.Class(int64(len(k.item)))
	}
	return int(s)
}

// String summarizes the sketch, for debugging.
func (c *CountMin) String() string {
	mode := "exact"
	if c.table != nil {
		mode = "table"
	}
	return fmt.Sprintf("cms(ε=%g δ=%g top=%d w=%d d=%d %s n=%d)", c.eps, c.delta, c.topK, c.w, c.d, mode, c.n)
}
