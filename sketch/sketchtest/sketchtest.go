// Package sketchtest is the conformance suite every sketch kind of package
// sketch passes: round trip, empty sketches, determinism across decode,
// merge of splits, commutativity, associativity, merge purity, clone
// independence and decode robustness.
package sketchtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// Factory describes one kind (with fixed parameters) to the suite.
type Factory struct {
	// New returns an empty sketch.
	New func() sketch.Sketch
	// Insert adds the event with stream position i and value v.
	Insert func(s sketch.Sketch, i, v uint64)
	// Equal reports how a and b answer differently ("" when they answer
	// the same). It is used where the suite expects identical state.
	Equal func(a, b sketch.Sketch) string
	// Close reports how a merged sketch got differs from want beyond the
	// kind's stated bounds ("" when within). It is used for merge order
	// properties; kinds whose merges are exact pass Equal.
	Close func(got, want sketch.Sketch) string
	// Canonical kinds encode equal states to equal bytes.
	Canonical bool
	// Sizes are the stream lengths to test (each kind should cover its
	// small and its large representation). Values come from Zipf(1.1)
	// over Distinct values.
	Sizes    []int
	Distinct uint64
}

// stream returns n (position, value) pairs from a fixed seed.
func stream(seed uint64, n int, distinct uint64) [][2]uint64 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	z := rand.NewZipf(rng, 1.1, 1, max(distinct, 1)-1)
	out := make([][2]uint64, n)
	for i := range out {
		out[i] = [2]uint64{uint64(i), z.Uint64()}
	}
	return out
}

func (f Factory) build(tb testing.TB, evs [][2]uint64) sketch.Sketch {
	tb.Helper()
	s := f.New()
	for _, e := range evs {
		f.Insert(s, e[0], e[1])
	}
	return s
}

func encode(tb testing.TB, s sketch.Sketch) []byte {
	tb.Helper()
	b, err := s.AppendBinary(nil)
	if err != nil {
		tb.Fatalf("AppendBinary: %v", err)
	}
	return b
}

func decode(tb testing.TB, b []byte) sketch.Sketch {
	tb.Helper()
	s, err := sketch.Decode(b)
	if err != nil {
		tb.Fatalf("Decode: %v", err)
	}
	return s
}

func merge(tb testing.TB, dst sketch.Sketch, srcs ...sketch.Sketch) sketch.Sketch {
	tb.Helper()
	for _, s := range srcs {
		if err := dst.Merge(s); err != nil {
			tb.Fatalf("Merge: %v", err)
		}
	}
	return dst
}

// Run runs the conformance suite for one kind.
func Run(t *testing.T, f Factory) {
	t.Run("Empty", func(t *testing.T) { f.testEmpty(t) })
	for _, n := range f.Sizes {
		evs := stream(uint64(n)+1, n, f.Distinct)
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			t.Run("RoundTrip", func(t *testing.T) { f.testRoundTrip(t, evs) })
			t.Run("DeterministicAcrossDecode", func(t *testing.T) { f.testDeterminism(t, evs) })
			t.Run("MergeOfSplits", func(t *testing.T) { f.testSplits(t, evs) })
			t.Run("Commutative", func(t *testing.T) { f.testCommutative(t, evs) })
			t.Run("Associative", func(t *testing.T) { f.testAssociative(t, evs) })
			t.Run("MergeReadsOnly", func(t *testing.T) { f.testMergePure(t, evs) })
			t.Run("Clone", func(t *testing.T) { f.testClone(t, evs) })
			t.Run("Incompatible", func(t *testing.T) { f.testIncompatible(t, evs) })
		})
	}
	t.Run("DecodeRobust", func(t *testing.T) { f.testRobust(t) })
}

func (f Factory) testEmpty(t *testing.T) {
	e := f.New()
	if e.Count() != 0 {
		t.Fatalf("empty Count = %d", e.Count())
	}
	if err := e.Params().Validate(); err != nil {
		t.Fatalf("Params of a new sketch do not validate: %v", err)
	}
	b := encode(t, e)
	d := decode(t, b)
	if d.Kind() != e.Kind() || d.Params() != e.Params() || d.Count() != 0 {
		t.Fatalf("decoded empty: kind %v params %+v count %d", d.Kind(), d.Params(), d.Count())
	}
	if diff := f.Equal(d, e); diff != "" {
		t.Fatalf("decoded empty differs: %s", diff)
	}
	if b2 := encode(t, d); !bytes.Equal(b, b2) {
		t.Fatalf("empty re-encoding differs")
	}
	// empty ⊕ empty, x ⊕ empty, empty ⊕ x.
	merge(t, d, f.New())
	if diff := f.Equal(d, e); diff != "" {
		t.Fatalf("empty⊕empty: %s", diff)
	}
	x := f.build(t, stream(7, 100, f.Distinct))
	want := f.build(t, stream(7, 100, f.Distinct))
	if diff := f.Equal(merge(t, x, f.New()), want); diff != "" {
		t.Fatalf("x⊕empty differs from x: %s", diff)
	}
	if diff := f.Equal(merge(t, f.New(), want), want); diff != "" {
		t.Fatalf("empty⊕x differs from x: %s", diff)
	}
}

func (f Factory) testRoundTrip(t *testing.T, evs [][2]uint64) {
	s := f.build(t, evs)
	b := encode(t, s)
	d := decode(t, b)
	if d.Count() != s.Count() || d.Params() != s.Params() {
		t.Fatalf("count/params %d %+v, want %d %+v", d.Count(), d.Params(), s.Count(), s.Params())
	}
	if diff := f.Equal(d, s); diff != "" {
		t.Fatalf("decoded differs: %s", diff)
	}
	if f.Canonical {
		if b2 := encode(t, d); !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs (%d vs %d bytes)", len(b2), len(b))
		}
	}
	// AppendBinary appends.
	pre := []byte("prefix")
	b3, err := s.AppendBinary(pre)
	if err != nil || !bytes.Equal(b3[:6], []byte("prefix")) || (f.Canonical && !bytes.Equal(b3[6:], b)) {
		t.Fatalf("AppendBinary does not append cleanly (err %v)", err)
	}
}

func (f Factory) testDeterminism(t *testing.T, evs [][2]uint64) {
	half := len(evs) / 2
	s := f.build(t, evs[:half])
	d := decode(t, encode(t, s))
	other := f.build(t, stream(99, len(evs)/3+1, f.Distinct))
	for _, x := range []sketch.Sketch{s, d} {
		for _, e := range evs[half:] {
			f.Insert(x, e[0], e[1])
		}
		merge(t, x, other)
		for _, e := range evs[:half] {
			f.Insert(x, e[0]+1e9, e[1])
		}
	}
	if diff := f.Equal(d, s); diff != "" {
		t.Fatalf("continuing after decode differs from continuing the original: %s", diff)
	}
	if f.Canonical && !bytes.Equal(encode(t, d), encode(t, s)) {
		t.Fatalf("continuing after decode encodes differently")
	}
}

func thirds(evs [][2]uint64) (a, b, c [][2]uint64) {
	n := len(evs)
	return evs[:n/3], evs[n/3 : 2*n/3], evs[2*n/3:]
}

func (f Factory) testSplits(t *testing.T, evs [][2]uint64) {
	a, b, c := thirds(evs)
	whole := f.build(t, evs)
	got := merge(t, f.build(t, a), f.build(t, b), f.build(t, c))
	if got.Count() != whole.Count() {
		t.Fatalf("merged Count %d, whole %d", got.Count(), whole.Count())
	}
	if diff := f.Close(got, whole); diff != "" {
		t.Fatalf("merge of splits vs whole stream: %s", diff)
	}
	// Through the wire, as a query does.
	got2 := decode(t, encode(t, f.build(t, a)))
	for _, part := range [][][2]uint64{b, c} {
		merge(t, got2, decode(t, encode(t, f.build(t, part))))
	}
	if diff := f.Equal(got2, got); diff != "" {
		t.Fatalf("merging decoded parts differs from merging the parts: %s", diff)
	}
}

func (f Factory) testCommutative(t *testing.T, evs [][2]uint64) {
	a, b, _ := thirds(evs)
	ab := merge(t, f.build(t, a), f.build(t, b))
	ba := merge(t, f.build(t, b), f.build(t, a))
	if diff := f.Close(ab, ba); diff != "" {
		t.Fatalf("a⊕b vs b⊕a: %s", diff)
	}
}

func (f Factory) testAssociative(t *testing.T, evs [][2]uint64) {
	a, b, c := thirds(evs)
	left := merge(t, merge(t, f.build(t, a), f.build(t, b)), f.build(t, c))
	right := merge(t, f.build(t, a), merge(t, f.build(t, b), f.build(t, c)))
	if diff := f.Close(left, right); diff != "" {
		t.Fatalf("(a⊕b)⊕c vs a⊕(b⊕c): %s", diff)
	}
}

func (f Factory) testMergePure(t *testing.T, evs [][2]uint64) {
	a, b, _ := thirds(evs)
	dst, src := f.build(t, a), f.build(t, b)
	before := encode(t, src)
	ref := f.build(t, b)
	merge(t, dst, src)
	if f.Canonical && !bytes.Equal(encode(t, src), before) {
		t.Fatalf("Merge changed its argument's encoding")
	}
	if diff := f.Equal(src, ref); diff != "" {
		t.Fatalf("Merge changed its argument: %s", diff)
	}
	// Self-merge is a merge with a copy.
	s1, s2 := f.build(t, a), f.build(t, a)
	merge(t, s1, s1)
	merge(t, s2, f.build(t, a))
	if diff := f.Equal(s1, s2); diff != "" {
		t.Fatalf("x.Merge(x) differs from x.Merge(copy of x): %s", diff)
	}
}

func (f Factory) testClone(t *testing.T, evs [][2]uint64) {
	s := f.build(t, evs)
	ref := f.build(t, evs)
	c := s.Clone()
	if diff := f.Equal(c, s); diff != "" {
		t.Fatalf("clone differs: %s", diff)
	}
	for _, e := range stream(5, 500, f.Distinct) {
		f.Insert(c, e[0]+1e12, e[1]+1e6)
	}
	if diff := f.Equal(s, ref); diff != "" {
		t.Fatalf("inserting into a clone changed the original: %s", diff)
	}
	if s.Size() <= 0 {
		t.Fatalf("Size() = %d", s.Size())
	}
}

func (f Factory) testIncompatible(t *testing.T, evs [][2]uint64) {
	s := f.build(t, evs)
	ref := f.build(t, evs)
	for _, p := range []sketch.Params{
		{Kind: sketch.KindHLL, Precision: 5},
		{Kind: sketch.KindCMS, Epsilon: 0.5},
		{Kind: sketch.KindTDigest, Compression: 11},
		{Kind: sketch.KindReservoir, Size: 3},
	} {
		o, err := sketch.New(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Merge(o); !errors.Is(err, sketch.ErrIncompatible) {
			t.Fatalf("Merge(%+v) = %v, want ErrIncompatible", p, err)
		}
	}
	if err := s.Merge(nil); !errors.Is(err, sketch.ErrIncompatible) {
		t.Fatalf("Merge(nil) = %v, want ErrIncompatible", err)
	}
	if diff := f.Equal(s, ref); diff != "" {
		t.Fatalf("a refused merge changed the sketch: %s", diff)
	}
}

func (f Factory) testRobust(t *testing.T) {
	for _, n := range f.Sizes {
		b := encode(t, f.build(t, stream(3, min(n, 3000), f.Distinct)))
		// Every strict prefix fails.
		step := max(1, len(b)/300)
		for i := 0; i < len(b); i += step {
			if _, err := sketch.Decode(b[:i]); !errors.Is(err, sketch.ErrCorrupt) && !errors.Is(err, sketch.ErrVersion) {
				t.Fatalf("Decode of a %d-byte prefix of %d: %v", i, len(b), err)
			}
		}
		// Trailing bytes fail.
		if _, err := sketch.Decode(append(bytes.Clone(b), 0)); err == nil {
			t.Fatalf("Decode accepted a trailing byte")
		}
		// Every single-bit flip fails (CRC-32C detects them all).
		for i := 0; i < len(b); i += step {
			c := bytes.Clone(b)
			c[i] ^= 1 << (i % 8)
			if _, err := sketch.Decode(c); err == nil {
				t.Fatalf("Decode accepted a bit flip at byte %d", i)
			}
		}
	}
}
