package sketch

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// TDigest estimates quantiles and the CDF: a merging t-digest whose
// centroids obey the original size bound w ≤ 4·N·q(1−q)/δ (the bound of
// github.com/caio/go-tdigest, so the same accuracy: rank errors around 1e-5
// at δ=100), kept in this package so that it is fully deterministic (no
// RNG), decodes without re-inserting, and merges many digests in one pass.
//
// Values are buffered raw (up to 5·δ of them) and folded into the centroids
// by one sort-and-compress pass when the buffer fills, so a digest of a few
// values is just those values and answers exactly. min and max are exact.
type TDigest struct {
	compression float64
	n           uint64
	min, max    float64
	cs          []centroid // compressed centroids, ascending by mean
	buf         []centroid // raw values not yet compressed, insertion order
}

type centroid struct {
	mean float64
	w    uint64
}

// QuantileEstimate is an estimated quantile with its uncertainty.
type QuantileEstimate struct {
	Q     float64
	Value float64 // NaN when Q is outside [0, 1] or the digest is empty
	// RankError estimates the ± error in rank (as a fraction of N): half
	// the weight of the centroids the interpolation used, over N. It is
	// 1/(2N) when those are single values.
	RankError float64
	// Lower and Upper are the values at Q∓RankError.
	Lower, Upper float64
}

// NewTDigest returns an empty t-digest with compression δ in 10..1000 (0
// takes the default 100).
func NewTDigest(compression float64) (*TDigest, error) {
	p := Params{Kind: KindTDigest, Compression: compression}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &TDigest{compression: p.Normalize().Compression}, nil
}

// Kind returns KindTDigest.
func (t *TDigest) Kind() Kind { return KindTDigest }

// Params returns the normalized parameters.
func (t *TDigest) Params() Params { return Params{Kind: KindTDigest, Compression: t.compression} }

// Count is the total weight added, merges included.
func (t *TDigest) Count() uint64 { return t.n }

// bufCap is the buffer length that triggers a compress pass.
func (t *TDigest) bufCap() int { return int(5 * t.compression) }

// maxCentroids bounds the centroids of a valid encoding. A compressed
// digest holds about δ·ln(N) of them (about 1,400 at δ=100, N=1e6), so
// this is far above any legitimate state.
func (t *TDigest) maxCentroids() int { return int(100*t.compression) + 100 }

// Add adds one value: NaN and ±Inf are refused with ErrNonFinite, a value
// beyond ±MaxInput with ErrRange.
func (t *TDigest) Add(x float64) error { return t.AddWeighted(x, 1) }

// AddWeighted adds x (finite, within ±MaxInput) with weight w ≥ 1.
func (t *TDigest) AddWeighted(x float64, w uint64) error {
	if err := checkInput("tdigest", x); err != nil {
		return err
	}
	if w == 0 {
		return fmt.Errorf("sketch: tdigest add with weight 0: %w", ErrParams)
	}
	if t.n+w < t.n {
		return fmt.Errorf("sketch: tdigest add: %w", ErrOverflow)
	}
	if t.n == 0 {
		t.min, t.max = x, x
	} else {
		t.min, t.max = min(t.min, x), max(t.max, x)
	}
	t.n += w
	t.buf = append(t.buf, centroid{x, w})
	if len(t.buf) >= t.bufCap() {
		t.flush()
	}
	return nil
}

// cmpCentroid orders by mean, then weight (means are never NaN).
func cmpCentroid(a, b centroid) int {
	switch {
	case a.mean < b.mean:
		return -1
	case a.mean > b.mean:
		return 1
	case a.w < b.w:
		return -1
	case a.w > b.w:
		return 1
	}
	return 0
}

func lessCentroid(a, b *centroid) bool { return a.mean < b.mean || (a.mean == b.mean && a.w < b.w) }

// flush folds the buffer into the centroids.
func (t *TDigest) flush() {
	sortCentroids(t.buf)
	all := mergeSorted(make([]centroid, 0, len(t.cs)+len(t.buf)), t.cs, t.buf)
	t.cs = compress(all, t.n, t.compression)
	if cap(t.cs) > 2*len(t.cs)+16 {
		t.cs = slices.Clone(t.cs)
	}
	t.buf = t.buf[:0]
}

// mergeSorted appends the merge of two sorted slices to dst.
func mergeSorted(dst, a, b []centroid) []centroid {
	start := len(dst)
	dst = slices.Grow(dst, len(a)+len(b))[:start+len(a)+len(b)]
	out := dst[start:]
	i, j, k := 0, 0, 0
	for i < len(a) && j < len(b) {
		if lessCentroid(&b[j], &a[i]) {
			out[k] = b[j]
			j++
		} else {
			out[k] = a[i]
			i++
		}
		k++
	}
	k += copy(out[k:], a[i:])
	copy(out[k:], b[j:])
	return dst
}

// mergeRuns merges sorted runs of n centroids in all into one sorted
// slice, pairwise in rounds, through the scratch slices x and y (grown to
// n and returned for reuse). The result may be a run itself, or x or y:
// read it before the next call.
func mergeRuns(runs [][]centroid, n int, x, y []centroid) (out, x2, y2 []centroid) {
	if len(runs) == 1 {
		return runs[0], x, y
	}
	x, y = slices.Grow(x[:0], n), slices.Grow(y[:0], n)
	for len(runs) > 1 {
		x = x[:0]
		next := runs[:0] // written behind the reads: next[i/2] after runs[i], runs[i+1]
		for i := 0; i < len(runs); i += 2 {
			start := len(x)
			if i+1 == len(runs) {
				x = append(x, runs[i]...)
			} else {
				x = mergeSorted(x, runs[i], runs[i+1])
			}
			next = append(next, x[start:len(x):len(x)])
		}
		runs = next
		x, y = y, x
	}
	return runs[0], x, y
}

// compress merges neighbours of the sorted cs in place, left to right,
// while the merged weight stays within 4·N·q(1−q)/δ, q being the merged
// centroid's mid rank. It returns cs shortened.
func compress(cs []centroid, n uint64, delta float64) []centroid {
	if len(cs) < 2 {
		return cs
	}
	// w ≤ 4·N·q(1−q)/δ with q = a/N, a the mid rank, is
	// w ≤ k·a·(N−a) with k = 4/(δ·N): no division per centroid.
	N := float64(n)
	k := 4 / (delta * N)
	j := 0
	cur := cs[0]
	var before float64
	for _, x := range cs[1:] {
		w := float64(cur.w) + float64(x.w)
		a := before + w/2
		if w <= k*a*(N-a) {
			m := cur.mean + (x.mean-cur.mean)*(float64(x.w)/w)
			cur.mean = min(max(m, cur.mean), x.mean)
			cur.w += x.w
			continue
		}
		cs[j] = cur
		j++
		before += float64(cur.w)
		cur = x
	}
	cs[j] = cur
	return cs[:j+1]
}

// Flush folds the buffered values into the centroids as they are, sorted
// and not compressed: every answer reads a digest with its buffer sorted
// and merged in (view), so a digest read many times, or shared by readers
// (a query's cached windows), is flushed once first, and its answers stay
// what they were (TestTDigestFlushKeepsAnswers). Compressing instead made
// the rank bounds of the load runner's hourly windows hold for 99.1-99.5%
// of ranks instead of 99.9%. The next Add or merge compresses as usual.
func (t *TDigest) Flush() {
	if len(t.buf) > 0 {
		t.cs = t.view()
	}
	t.buf = nil // a shared digest takes no more values: no spare buffer
}

// view returns the centroids with the buffer merged in (uncompressed), for
// queries; it allocates only when the buffer is not empty.
func (t *TDigest) view() []centroid {
	if len(t.buf) == 0 {
		return t.cs
	}
	b := t.buf
	if !isSortedRun(b) { // a decoded or merged digest's buffer is sorted
		b = slices.Clone(b)
		sortCentroids(b)
	}
	return mergeSorted(make([]centroid, 0, len(t.cs)+len(b)), t.cs, b)
}

// isSortedRun reports whether cs is sorted by (mean, weight), as
// slices.IsSortedFunc(cs, cmpCentroid) does, with the comparison inlined.
func isSortedRun(cs []centroid) bool {
	for i := 1; i < len(cs); i++ {
		if lessCentroid(&cs[i], &cs[i-1]) {
			return false
		}
	}
	return true
}

// Merge folds another *TDigest with the same compression into t.
func (t *TDigest) Merge(other Sketch) error {
	o, ok := other.(*TDigest)
	if !ok || o == nil || o.compression != t.compression {
		return incompatible(t, other)
	}
	return t.MergeMany(o)
}

// run returns t's centroids and buffered values as one sorted slice (a new
// slice: t is only read).
func (t *TDigest) run() []centroid { return t.runInto(nil) }

// runInto is run written into dst's array when it has room.
func (t *TDigest) runInto(dst []centroid) []centroid {
	b := t.buf
	if !isSortedRun(b) {
		b = slices.Clone(b)
		sortCentroids(b)
	}
	return mergeSorted(slices.Grow(dst[:0], len(t.cs)+len(b)), t.cs, b)
}

// tdCentroids holds mergeMany's scratch runs (scratch.go).
var tdCentroids = newScratchPool[centroid]()

// MergeMany folds all others into t: the way to merge the many panes of a
// query (see BenchmarkTDigestMerge1440). While everything fits in t's
// buffer it is buffered.
func (t *TDigest) MergeMany(others ...*TDigest) error {
	for _, o := range others {
		if o == nil || o.compression != t.compression {
			return incompatible(t, o)
		}
	}
	return t.mergeMany(others)
}

// MergeFiner is MergeMany for digests of any compression, the result
// compressed for t's: a query merges a window's final part at a finer
// compression than its panes' so that merging it again with the open part
// adds about no error (internal/query, edgewin.go). Centroids are weighted
// means whatever the compression they were kept at.
func (t *TDigest) MergeFiner(others ...*TDigest) error {
	for _, o := range others {
		if o == nil {
			return incompatible(t, o)
		}
	}
	return t.mergeMany(others)
}

func (t *TDigest) mergeMany(others []*TDigest) error {
	n, extra, largest := t.n, 0, 0
	for _, o := range others {
		if n+o.n < n {
			return fmt.Errorf("sketch: tdigest merge: %w", ErrOverflow)
		}
		n += o.n
		extra += len(o.cs) + len(o.buf)
		largest = max(largest, len(o.cs)+len(o.buf))
	}
	if n == t.n {
		return nil
	}
	lo, hi := t.rangeWith(others) // before writing t: one of the others may be t
	if len(t.buf)+extra < t.bufCap() {
		t.buf = bufferOf(t, others, len(t.buf)+extra)
	} else {
		t.foldInBatches(others, largest)
	}
	t.n, t.min, t.max = n, lo, hi
	return nil
}

// rangeWith returns the least and greatest values of t and others
// together.
func (t *TDigest) rangeWith(others []*TDigest) (lo, hi float64) {
	lo, hi = t.min, t.max
	first := t.n == 0
	for _, o := range others {
		if o.n == 0 {
			continue
		}
		if first {
			lo, hi, first = o.min, o.max, false
		}
		lo, hi = min(lo, o.min), max(hi, o.max)
	}
	return lo, hi
}

// foldInBatches folds the others into t, in order, in batches (largest
// is the most centroids and values one of them holds): a batch collects
// inputs until it is at least as large as the running digest (or
// the buffer), is sorted, merged with the digest and compressed for
// the running count. The digest stays at its compressed size, so
// the work per input is about its own size (no global sort, no
// rescan of the digest per small input), and the scratch slices are
// reused throughout. A batch is its inputs' sorted runs (their
// centroids, read in place, and their sorted buffers), merged
// pairwise rather than sorted: the same order, ties being equal
// centroids, in O(n log runs) instead of O(n log n) comparisons
// (most of the t-digest merge of an edge window, edgewin.go).
// cur, spare, x, y and loose are scratch (scratch.go): t keeps a
// copy of the last cur.
func (t *TDigest) foldInBatches(others []*TDigest, largest int) {
	sc := [5]*[]centroid{}
	for i := range sc {
		sc[i] = tdCentroids.get()
	}
	cur, curN := t.runInto(*sc[0]), t.n
	spare, x, y, loose := *sc[1], *sc[2], *sc[3], *sc[4] // loose: the batch's buffers, sorted as one run
	defer func() {
		*sc[0], *sc[1], *sc[2], *sc[3], *sc[4] = cur, spare, x, y, loose
		for _, v := range sc {
			tdCentroids.put(v)
		}
	}()
	var runs [][]centroid
	var batchLen int
	var batchN uint64
	fold := func() {
		if len(loose) > 0 {
			sortCentroids(loose)
			runs = append(runs, loose)
		}
		// A batch closes once it is as large as the digest or the
		// buffer, so its inputs are fewer than that and one more input:
		// the scratch slices are made that large once, not grown by
		// each fold that outgrows the last (most of the bytes a cold
		// series of quantiles allocated).
		hint := max(len(cur), t.bufCap()) + largest
		if len(runs) > 1 && cap(x) < batchLen {
			x, y = make([]centroid, 0, max(batchLen, hint)), make([]centroid, 0, max(batchLen, hint))
		}
		var batch []centroid
		batch, x, y = mergeRuns(runs, batchLen, x, y)
		if need := len(cur) + len(batch); cap(spare) < need {
			spare = make([]centroid, 0, max(need, len(cur)+hint))
		}
		spare = mergeSorted(spare[:0], cur, batch)
		curN += batchN
		spare = compress(spare, curN, t.compression)
		cur, spare = spare, cur
		runs, loose, batchLen, batchN = runs[:0], loose[:0], 0, 0
	}
	for _, o := range others {
		if o.n == 0 {
			continue
		}
		if len(o.cs) > 0 {
			runs = append(runs, o.cs)
		}
		if isSortedRun(o.buf) { // a decoded pane's values are
			if len(o.buf) > 0 {
				runs = append(runs, o.buf)
			}
		} else {
			loose = append(loose, o.buf...)
		}
		batchLen += len(o.cs) + len(o.buf)
		batchN += o.n
		if batchLen >= max(len(cur), t.bufCap()) {
			fold()
		}
	}
	if batchN > 0 {
		fold()
	}
	t.cs = slices.Clone(cur)
	t.buf = nil
}

// bufferOf returns the buffer of t merged with others when all n of
// their centroids and values fit in it: one sorted run when t's and the
// others' buffers are sorted (their centroids are), as a decoded digest's
// are, merged pairwise in O(n log runs); else their concatenation. The
// order of a buffer changes no answer (every reader sorts it: flush, view,
// run, AppendBinary), but view sorted the unsorted concatenation again at
// every Flush of a merged window, a third of the t-digest cold series'
// time (BenchmarkFirstSeries/tdigest_24h_series in internal/query).
func bufferOf(t *TDigest, others []*TDigest, n int) []centroid {
	runs := make([][]centroid, 0, 2*len(others)+1)
	sorted := true
	add := func(cs []centroid) {
		if len(cs) > 0 {
			runs = append(runs, cs)
			sorted = sorted && isSortedRun(cs)
		}
	}
	add(t.buf)
	for _, o := range others {
		add(o.cs)
		add(o.buf)
	}
	if !sorted || len(runs) < 2 {
		buf := make([]centroid, 0, n)
		for _, r := range runs {
			buf = append(buf, r...)
		}
		return buf
	}
	out, _, _ := mergeRuns(runs, n, nil, nil) // two runs or more: out is one of its scratch slices
	return out[:len(out):len(out)]
}

// centroid reads a centroid, {f64 mean, uvarint weight}, when its bytes
// are there and the weight minimal, as r.f64 and r.uvarint would, without
// their checks per field: decoding was a fifth of the cold computation of
// a series of quantiles (BenchmarkFirstSeries/tdigest_24h_series in
// internal/query), a pane of a few hundred values being that many
// centroids. ok false leaves r as it was.
func (r *reader) centroid() (c centroid, ok bool) {
	if r.err != nil || len(r.b)-r.off < 9 {
		return c, false
	}
	b := r.b[r.off:]
	w, n := binary.Uvarint(b[8:])
	if n <= 0 || n != uvarintLen(w) {
		return c, false
	}
	r.off += 8 + n
	return centroid{math.Float64frombits(binary.LittleEndian.Uint64(b)), w}, true
}

// Min returns the smallest value added (NaN when empty).
func (t *TDigest) Min() float64 {
	if t.n == 0 {
		return math.NaN()
	}
	return t.min
}

// Max returns the largest value added (NaN when empty).
func (t *TDigest) Max() float64 {
	if t.n == 0 {
		return math.NaN()
	}
	return t.max
}

// Quantile estimates the q-quantile. q outside [0, 1] (or NaN) and an empty
// digest give Value NaN. It does not change the digest.
func (t *TDigest) Quantile(q float64) QuantileEstimate {
	e := QuantileEstimate{Q: q, Value: math.NaN(), Lower: math.NaN(), Upper: math.NaN()}
	if t.n == 0 || !(q >= 0 && q <= 1) {
		return e
	}
	cs := t.view()
	var halfW float64
	e.Value, halfW = t.quantile(cs, q)
	e.RankError = halfW / float64(t.n)
	e.Lower, _ = t.quantile(cs, max(0, q-e.RankError))
	e.Upper, _ = t.quantile(cs, min(1, q+e.RankError))
	return e
}

// quantile interpolates between centroid centres (Dunning's MergingDigest
// rule: single values are exact, the tails interpolate to min and max).
// It also returns half the largest weight involved.
func (t *TDigest) quantile(cs []centroid, q float64) (float64, float64) {
	N := float64(t.n)
	index := q * N
	last := len(cs) - 1
	w0, wl := float64(cs[0].w), float64(cs[last].w)
	switch {
	case index < 1:
		return t.min, 0.5
	case cs[0].w > 1 && index < w0/2:
		return t.min + (index-1)/(w0/2-1)*(cs[0].mean-t.min), w0 / 2
	case index > N-1:
		return t.max, 0.5
	case cs[last].w > 2 && N-index <= wl/2:
		return t.max - (N-index-1)/(wl/2-1)*(t.max-cs[last].mean), wl / 2
	case cs[last].w == 2 && N-index <= 1:
		return t.max, 1
	}
	so := w0 / 2
	for i := 0; i < last; i++ {
		a, b := cs[i], cs[i+1]
		dw := (float64(a.w) + float64(b.w)) / 2
		if so+dw > index {
			half := float64(max(a.w, b.w)) / 2
			var lu, ru float64
			if a.w == 1 {
				if index-so < 0.5 {
					return a.mean, half
				}
				lu = 0.5
			}
			if b.w == 1 {
				if so+dw-index <= 0.5 {
					return b.mean, half
				}
				ru = 0.5
			}
			z1 := index - so - lu
			z2 := so + dw - index - ru
			v := (a.mean*z2 + b.mean*z1) / (z1 + z2)
			if math.IsInf(v, 0) { // large means times ranks: weigh them by fractions instead
				v = a.mean*(z2/(z1+z2)) + b.mean*(z1/(z1+z2))
			}
			return min(max(v, a.mean), b.mean), half
		}
		so += dw
	}
	return t.max, wl / 2
}

// CDF estimates the fraction of values ≤ x, counting values equal to x by
// half (NaN when empty or x is NaN).
func (t *TDigest) CDF(x float64) float64 {
	if t.n == 0 || math.IsNaN(x) {
		return math.NaN()
	}
	if x < t.min {
		return 0
	}
	if x > t.max {
		return 1
	}
	N := float64(t.n)
	cs := t.view()
	if len(cs) == 1 {
		if t.max == t.min {
			return 0.5
		}
		return (x - t.min) / (t.max - t.min)
	}
	last := len(cs) - 1
	if x < cs[0].mean {
		if cs[0].mean-t.min > 0 {
			if x == t.min {
				return 0.5 / N
			}
			return (1 + (x-t.min)/(cs[0].mean-t.min)*(float64(cs[0].w)/2-1)) / N
		}
		return 0
	}
	if x > cs[last].mean {
		if t.max-cs[last].mean > 0 {
			if x == t.max {
				return 1 - 0.5/N
			}
			return 1 - (1+(t.max-x)/(t.max-cs[last].mean)*(float64(cs[last].w)/2-1))/N
		}
		return 1
	}
	var so float64
	for i := 0; i < last; i++ {
		a, b := cs[i], cs[i+1]
		if a.mean == x {
			var dw float64
			for ; i <= last && cs[i].mean == x; i++ {
				dw += float64(cs[i].w)
			}
			return (so + dw/2) / N
		}
		if a.mean <= x && x < b.mean {
			var lx, rx float64
			if a.w == 1 {
				if b.w == 1 {
					return (so + 1) / N
				}
				lx = 0.5
			} else if b.w == 1 {
				rx = 0.5
			}
			dw := (float64(a.w) + float64(b.w)) / 2
			base := so + float64(a.w)/2
			return (base + lx + (dw-lx-rx)*(x-a.mean)/(b.mean-a.mean)) / N
		}
		so += float64(a.w)
	}
	return 1 - 0.5/N
}

// Clone returns an independent copy.
func (t *TDigest) Clone() Sketch {
	c := *t
	c.cs = slices.Clone(t.cs)
	c.buf = slices.Clone(t.buf)
	return &c
}

// Size is the approximate heap footprint in bytes.
func (t *TDigest) Size() int { return 96 + 16*(cap(t.cs)+cap(t.buf)) }

// Centroids returns the number of compressed centroids and of buffered
// values.
func (t *TDigest) Centroids() (compressed, buffered int) { return len(t.cs), len(t.buf) }

// AppendBinary appends the envelope. Payload: uvarint C, uvarint B; when
// C+B > 0: f64 min, f64 max, C × {f64 mean, uvarint weight} ascending, then
// the B buffered values as {f64 value, uvarint weight} sorted by value then
// weight. The encoding is canonical and lossless.
func (t *TDigest) AppendBinary(dst []byte) ([]byte, error) {
	return appendEnvelope(dst, KindTDigest, hashNone, t.n, t.Params(), func(b []byte) ([]byte, error) {
		b = binary.AppendUvarint(b, uint64(len(t.cs)))
		b = binary.AppendUvarint(b, uint64(len(t.buf)))
		if t.n == 0 {
			return b, nil
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t.min))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t.max))
		appendC := func(b []byte, cs []centroid) []byte {
			for _, c := range cs {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.mean))
				b = binary.AppendUvarint(b, c.w)
			}
			return b
		}
		b = appendC(b, t.cs)
		buf := slices.Clone(t.buf)
		sortCentroids(buf)
		return appendC(b, buf), nil
	})
}

func decodeTDigest(h header, params, payload []byte, arena *DecodeArena) (*TDigest, *DecodeError) {
	p, derr := parseParams(KindTDigest, params)
	if derr != nil {
		return nil, derr
	}
	t := &TDigest{compression: p.Compression, n: h.n}
	r := reader{b: payload}
	nc := r.count("centroids", 9)
	nb := r.count("buffered values", 9)
	switch {
	case r.err != nil:
	case nc > t.maxCentroids():
		r.fail("%d centroids exceed the limit %d", nc, t.maxCentroids())
	case nb >= t.bufCap():
		r.fail("%d buffered values, the buffer holds fewer than %d", nb, t.bufCap())
	case (nc+nb == 0) != (h.n == 0):
		r.fail("%d centroids and values for count %d", nc+nb, h.n)
	}
	if r.err == nil && h.n > 0 {
		t.min, t.max = r.f64("min"), r.f64("max")
		if r.err == nil && !(isFinite(t.min) && isFinite(t.max) && t.min <= t.max) {
			r.fail("bad min %g / max %g", t.min, t.max)
		}
		var sum uint64
		read := func(k int, what string, byWeight bool) []centroid {
			cs := arena.centroids(k)
			for i := 0; i < k && r.err == nil; i++ {
				c, ok := r.centroid()
				if !ok { // short or non-minimal: read again, for the error
					c = centroid{r.f64(what), r.uvarint("weight")}
				}
				switch {
				case r.err != nil:
				case !isFinite(c.mean) || c.mean < t.min || c.mean > t.max:
					r.fail("%s %d: mean %g outside [min, max]", what, i, c.mean)
				case c.w == 0:
					r.fail("%s %d: zero weight", what, i)
				case i > 0 && (cs[i-1].mean > c.mean || byWeight && cmpCentroid(cs[i-1], c) > 0):
					r.fail("%s %d: not ascending", what, i)
				case sum+c.w < sum:
					r.fail("weights overflow")
				}
				sum += c.w
				cs = append(cs, c)
			}
			return cs
		}
		t.cs = read(nc, "centroid", false)
		if nb > 0 {
			t.buf = read(nb, "buffered value", true)
		}
		if r.err == nil && sum != h.n {
			r.fail("weights sum to %d, count is %d", sum, h.n)
		}
		if r.err == nil && nc == 0 && nb > 0 && (t.buf[0].mean != t.min || t.buf[nb-1].mean != t.max) {
			r.fail("min/max do not match the values")
		}
	}
	r.end("tdigest payload")
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}
