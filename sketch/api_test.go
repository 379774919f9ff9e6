package sketch_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

func TestKindString(t *testing.T) {
	for k, want := range map[sketch.Kind]string{
		sketch.KindHLL: "hll", sketch.KindCMS: "cms", sketch.KindTDigest: "tdigest",
		sketch.KindReservoir: "reservoir", 9: "kind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestNewParams(t *testing.T) {
	for _, tc := range []struct {
		p    sketch.Params
		want sketch.Params // normalized; zero Kind means New must fail
	}{
		{sketch.Params{Kind: sketch.KindHLL}, sketch.Params{Kind: sketch.KindHLL, Precision: 14}},
		{sketch.Params{Kind: sketch.KindHLL, Precision: 18}, sketch.Params{Kind: sketch.KindHLL, Precision: 18}},
		{sketch.Params{Kind: sketch.KindHLL, Precision: 3}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindHLL, Precision: 19}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindHLL, Size: 3}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindCMS}, sketch.Params{Kind: sketch.KindCMS, Epsilon: 0.001, Delta: 0.01, TopK: 10}},
		{sketch.Params{Kind: sketch.KindCMS, Epsilon: 1}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindCMS, Delta: math.NaN()}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindCMS, TopK: 1001}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindTDigest}, sketch.Params{Kind: sketch.KindTDigest, Compression: 100}},
		{sketch.Params{Kind: sketch.KindTDigest, Compression: 9}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindTDigest, Compression: math.Inf(1)}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindReservoir}, sketch.Params{Kind: sketch.KindReservoir, Size: 32}},
		{sketch.Params{Kind: sketch.KindReservoir, Size: 5, Weighted: true}, sketch.Params{Kind: sketch.KindReservoir, Size: 5, Weighted: true}},
		{sketch.Params{Kind: sketch.KindReservoir, Size: 10001}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindTheta}, sketch.Params{Kind: sketch.KindTheta, NominalEntries: 4096}},
		{sketch.Params{Kind: sketch.KindTheta, NominalEntries: 15}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindTheta, NominalEntries: 1<<16 + 1}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindTheta, Size: 3}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindDDSketch}, sketch.Params{Kind: sketch.KindDDSketch, RelativeAccuracy: 0.01}},
		{sketch.Params{Kind: sketch.KindDDSketch, RelativeAccuracy: 0.0009}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindDDSketch, RelativeAccuracy: 0.6}, sketch.Params{}},
		{sketch.Params{Kind: sketch.KindDDSketch, RelativeAccuracy: math.NaN()}, sketch.Params{}},
		{sketch.Params{Kind: 0}, sketch.Params{}},
		{sketch.Params{Kind: 7}, sketch.Params{}},
	} {
		s, err := sketch.New(tc.p)
		if tc.want.Kind == 0 {
			if !errors.Is(err, sketch.ErrParams) {
				t.Errorf("New(%+v) = %v, want ErrParams", tc.p, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%+v): %v", tc.p, err)
			continue
		}
		if s.Params() != tc.want || s.Kind() != tc.want.Kind {
			t.Errorf("New(%+v).Params() = %+v, want %+v", tc.p, s.Params(), tc.want)
		}
	}
}

// reseal recomputes the CRC of a tampered blob, so that the decoder's own
// checks (not the CRC) must catch the tampering.
func reseal(b []byte) []byte {
	body := len(b) - 4
	binary.LittleEndian.PutUint32(b[body:], crc32.Checksum(b[:body], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestDecodeErrors(t *testing.T) {
	td, _ := sketch.NewTDigest(100)
	for _, x := range []float64{1, 2, 3, 4} {
		_ = td.Add(x)
	}
	good, _ := td.AppendBinary(nil)
	mut := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, sketch.ErrCorrupt},
		{"magic", mut(func(b []byte) []byte { b[0] = 'X'; return reseal(b) }), sketch.ErrCorrupt},
		{"envelope version", mut(func(b []byte) []byte { b[2] = 2; return reseal(b) }), sketch.ErrVersion},
		{"kind", mut(func(b []byte) []byte { b[3] = 9; return reseal(b) }), sketch.ErrVersion},
		{"payload version", mut(func(b []byte) []byte { b[4] = 2; return reseal(b) }), sketch.ErrVersion},
		{"hash id", mut(func(b []byte) []byte { b[5] = 1; return reseal(b) }), sketch.ErrVersion},
		{"flags", mut(func(b []byte) []byte { b[6] = 1; return reseal(b) }), sketch.ErrVersion},
		{"crc", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), sketch.ErrCorrupt},
		{"count", mut(func(b []byte) []byte { b[8]++; return reseal(b) }), sketch.ErrCorrupt},
		{"trailing", reseal(append(mut(func(b []byte) []byte { return b }), 0, 0, 0, 0)), sketch.ErrCorrupt},
		{"NaN mean", mut(func(b []byte) []byte {
			// payload: C=0, B=4, min, max, then values; the first value
			// follows the header, params and lengths.
			i := len(b) - 4 - 4*9 // first buffered value
			binary.LittleEndian.PutUint64(b[i:], math.Float64bits(math.NaN()))
			return reseal(b)
		}), sketch.ErrCorrupt},
		{"unsorted", mut(func(b []byte) []byte {
			i := len(b) - 4 - 4*9
			binary.LittleEndian.PutUint64(b[i:], math.Float64bits(3.5))
			return reseal(b)
		}), sketch.ErrCorrupt},
		{"zero weight", mut(func(b []byte) []byte { b[len(b)-5] = 0; return reseal(b) }), sketch.ErrCorrupt},
	} {
		s, err := sketch.Decode(tc.b)
		if !errors.Is(err, tc.want) || s != nil {
			t.Errorf("%s: Decode = %v, %v; want %v", tc.name, s, err, tc.want)
			continue
		}
		var de *sketch.DecodeError
		if !errors.As(err, &de) || de.Reason == "" {
			t.Errorf("%s: %v is not a *DecodeError with a reason", tc.name, err)
		}
	}
	if _, err := sketch.Decode(good); err != nil {
		t.Fatalf("the untampered blob: %v", err)
	}
	p, n, err := sketch.DecodeHeader(good)
	if err != nil || p != td.Params() || n != 4 {
		t.Fatalf("DecodeHeader = %+v %d %v", p, n, err)
	}
}

func TestTDigestInputs(t *testing.T) {
	td, _ := sketch.NewTDigest(0)
	if e := td.Quantile(0.5); !math.IsNaN(e.Value) || !math.IsNaN(td.CDF(1)) || !math.IsNaN(td.Min()) {
		t.Fatalf("empty digest: %+v", e)
	}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := td.Add(x); !errors.Is(err, sketch.ErrNonFinite) {
			t.Fatalf("Add(%g) = %v", x, err)
		}
	}
	if err := td.AddWeighted(1, 0); !errors.Is(err, sketch.ErrParams) {
		t.Fatalf("AddWeighted(1, 0) = %v", err)
	}
	if td.Count() != 0 {
		t.Fatalf("refused adds were counted")
	}
	for i := range 10 {
		_ = td.Add(float64(i))
	}
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if e := td.Quantile(q); !math.IsNaN(e.Value) {
			t.Fatalf("Quantile(%g) = %+v", q, e)
		}
	}
	// Small digests are exact: the order statistics.
	if e := td.Quantile(0.5); e.Value != 5 || td.Quantile(0).Value != 0 || td.Quantile(1).Value != 9 {
		t.Fatalf("Quantile on 0..9: q0.5=%+v", e)
	}
	if c := td.CDF(4); c != 0.45 {
		t.Fatalf("CDF(4) = %g, want 0.45 (values equal to x count half)", c)
	}
	if err := td.AddWeighted(1, math.MaxUint64); !errors.Is(err, sketch.ErrOverflow) {
		t.Fatalf("overflowing AddWeighted = %v", err)
	}
}

func TestCMSExactMode(t *testing.T) {
	a, _ := sketch.NewCountMin(0.01, 0.01, 3)
	b, _ := sketch.NewCountMin(0.01, 0.01, 3)
	add := func(c *sketch.CountMin, s string, n uint64) { c.Add(sketch.HashString(s), []byte(s), n) }
	add(a, "x", 5)
	add(a, "y", 1)
	add(b, "x", 2)
	add(b, "z", 7)
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if !a.Exact() || a.Total() != 15 {
		t.Fatalf("exact⊕exact: exact=%v total=%d", a.Exact(), a.Total())
	}
	e := a.Estimate([]byte("x"))
	if e.Estimate != 7 || e.Lower != 7 || e.Upper != 7 || e.ErrorBound != 0 || e.Confidence != 1 {
		t.Fatalf("exact estimate %+v", e)
	}
	top := a.TopK(2)
	if len(top) != 2 || string(top[0].Item) != "x" || string(top[1].Item) != "z" {
		t.Fatalf("TopK = %+v", top)
	}
	// Grow past the budget: the table takes over, bounds appear.
	for i := range 2000 {
		add(a, string(itemOf(uint64(i))), 1)
	}
	if a.Exact() {
		t.Fatalf("still exact after 2000 distinct items")
	}
	e = a.Estimate([]byte("x"))
	if e.Estimate < 7 || e.ErrorBound == 0 || e.Upper != e.Estimate || e.Confidence != 1-a.Delta() {
		t.Fatalf("table estimate %+v", e)
	}
	if a.Epsilon() != math.E/512 {
		t.Fatalf("Epsilon() = %g, want e/512", a.Epsilon())
	}
	if got := a.TopK(1000); len(got) != 16 {
		t.Fatalf("TopK(1000) returned %d candidates, want max(4·3, 16) = 16", len(got))
	}
}

func TestHLLMergePrecision(t *testing.T) {
	a, _ := sketch.NewHLL(14)
	b, _ := sketch.NewHLL(12)
	b.Insert([]byte("x"))
	if err := a.Merge(b); !errors.Is(err, sketch.ErrIncompatible) {
		t.Fatalf("merge p14 with p12: %v", err)
	}
	e := a.Estimate()
	if e.Estimate != 0 || e.Confidence != 0.95 || e.RSE != 1.04/128 {
		t.Fatalf("empty estimate %+v", e)
	}
}

func TestMergeAllMixed(t *testing.T) {
	td, _ := sketch.NewTDigest(100)
	h, _ := sketch.NewHLL(14)
	if err := sketch.MergeAll(td, h); !errors.Is(err, sketch.ErrIncompatible) {
		t.Fatalf("MergeAll(tdigest, hll) = %v", err)
	}
	h2, _ := sketch.NewHLL(14)
	h2.Insert([]byte("a"))
	if err := sketch.MergeAll(h, h2, h2); err != nil || h.Count() != 2 {
		t.Fatalf("MergeAll(hll...) = %v, count %d", err, h.Count())
	}
}

// TestNoAllocs: the hot paths do not allocate once in their steady
// representation.
func TestNoAllocs(t *testing.T) {
	h, _ := sketch.NewHLL(14)
	for i := range 100000 {
		h.InsertHash(splitmix64(uint64(i)))
	}
	var i uint64
	if a := testing.AllocsPerRun(1000, func() { i++; h.InsertHash(splitmix64(i)) }); a != 0 {
		t.Errorf("HLL.InsertHash allocates %.1f times when dense", a)
	}
	c, _ := sketch.NewCountMin(0.001, 0.01, 10)
	items := make([][]byte, 5000)
	for j := range items {
		items[j] = itemOf(uint64(j))
	}
	for _, v := range zipfStream(3, 200000, 5000) {
		c.Add(sketch.Hash(items[v]), items[v], 1)
	}
	tail := items[4000] // rare: not a candidate
	if a := testing.AllocsPerRun(1000, func() { c.Add(sketch.Hash(tail), tail, 1) }); a != 0 {
		t.Errorf("CountMin.Add allocates %.1f times for a non-candidate in table mode", a)
	}
	head := items[0] // a candidate
	if a := testing.AllocsPerRun(1000, func() { c.Add(sketch.Hash(head), head, 1) }); a != 0 {
		t.Errorf("CountMin.Add allocates %.1f times for a candidate in table mode", a)
	}
	r, _ := sketch.NewReservoir(32, false)
	for j := range 100000 {
		r.Add(splitmix64(uint64(j)), items[j%5000], 1)
	}
	if a := testing.AllocsPerRun(1000, func() { i++; r.Add(math.MaxUint64-i, items[1], 1) }); a != 0 {
		t.Errorf("Reservoir.Add allocates %.1f times for a rejected item", a)
	}
}

// TestDecodeAllocsDoNotGrowWithItems: decoding an exact-mode count-min
// allocates the same number of times for 10 items as for 500: its map,
// counts and item arena are sized once, and reading an item makes no
// string (it made one per item, 536 allocations for 500 items).
func TestDecodeAllocsDoNotGrowWithItems(t *testing.T) {
	allocs := func(n int) float64 {
		c, _ := sketch.NewCountMin(0.001, 0.01, 20)
		for i := range n {
			it := itemOf(uint64(i))
			c.Add(sketch.Hash(it), it, 1)
		}
		blob := mustEncode(t, c)
		return testing.AllocsPerRun(100, func() {
			if _, err := sketch.Decode(blob); err != nil {
				t.Fatal(err)
			}
		})
	}
	if small, large := allocs(10), allocs(500); large != small {
		t.Errorf("decoding 10 items allocates %.0f times, 500 items %.0f", small, large)
	}
}

func TestMergeNilPointers(t *testing.T) {
	h, _ := sketch.NewHLL(14)
	c, _ := sketch.NewCountMin(0, 0, 0)
	td, _ := sketch.NewTDigest(0)
	r, _ := sketch.NewReservoir(0, false)
	for _, s := range []sketch.Sketch{h, c, td, r} {
		for _, o := range []sketch.Sketch{(*sketch.HLL)(nil), (*sketch.CountMin)(nil), (*sketch.TDigest)(nil), (*sketch.Reservoir)(nil), nil} {
			if err := s.Merge(o); !errors.Is(err, sketch.ErrIncompatible) {
				t.Errorf("%s.Merge(%T nil) = %v", s.Kind(), o, err)
			}
		}
	}
	if err := td.MergeMany(nil); !errors.Is(err, sketch.ErrIncompatible) {
		t.Errorf("MergeMany(nil) = %v", err)
	}
}

// TestTDigestQuantileNeverNaN sweeps q over digests whose end centroids
// have small weights (the interpolation's edge cases).
func TestTDigestQuantileNeverNaN(t *testing.T) {
	for _, ws := range [][]uint64{{1}, {2}, {3}, {2, 2}, {1, 2}, {2, 1}, {5, 1, 2}, {2, 7, 2}} {
		td, _ := sketch.NewTDigest(10)
		for i, w := range ws {
			_ = td.AddWeighted(float64(i), w)
		}
		for k := 0; k <= 1000; k++ {
			q := float64(k) / 1000
			if v := td.Quantile(q).Value; math.IsNaN(v) || v < td.Min() || v > td.Max() {
				t.Fatalf("weights %v: Quantile(%g) = %g", ws, q, v)
			}
			if c := td.CDF(float64(k)/1000*float64(len(ws)) - 0.5); math.IsNaN(c) || c < 0 || c > 1 {
				t.Fatalf("weights %v: CDF = %g", ws, c)
			}
		}
	}
}
