package sketch_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestHLLRegisters: two HLLs fed the same set of items have the same
// registers whatever the order, the merges and the encode/decode round
// trips in between, although their encodings may differ; one more item
// changes them (for a small set, where it lands on an empty register).
func TestHLLRegisters(t *testing.T) {
	seed := uint64(20261205)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range []int{100, 3000, 7000, 20000} { // sparse, sparse, about the switch, dense
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			items := make([][]byte, n)
			for i := range items {
				items[i] = fmt.Appendf(nil, "user-%d-%d", n, rng.Uint64())
			}
			inOrder := newHLL(t)
			for _, it := range items {
				inOrder.Insert(it)
			}
			// Shuffled, with duplicates, an estimate and a round trip
			// through the encoding at a random point.
			shuffled := newHLL(t)
			perm := rng.Perm(n)
			cut := rng.IntN(n)
			for i, j := range perm {
				shuffled.Insert(items[j])
				if i%7 == 0 {
					shuffled.Insert(items[j])
				}
				if i == cut {
					_ = shuffled.Estimate()
					shuffled = roundTrip(t, shuffled)
				}
			}
			// Two halves merged.
			a, b := newHLL(t), newHLL(t)
			for i, it := range items {
				if i < n/2 {
					a.Insert(it)
				} else {
					b.Insert(it)
				}
			}
			if err := a.Merge(roundTrip(t, b)); err != nil {
				t.Fatal(err)
			}
			want := inOrder.Registers()
			if len(want) != 1<<sketch.DefaultPrecision {
				t.Fatalf("%d registers, want %d", len(want), 1<<sketch.DefaultPrecision)
			}
			for name, h := range map[string]*sketch.HLL{"shuffled": shuffled, "merged halves": a} {
				if !bytes.Equal(h.Registers(), want) {
					t.Errorf("%s: registers differ from the in-order sketch's", name)
				}
				if h.Estimate().Estimate != inOrder.Estimate().Estimate {
					t.Errorf("%s: estimate %v, in order %v", name, h.Estimate().Estimate, inOrder.Estimate().Estimate)
				}
			}
			if n == 100 {
				inOrder.Insert([]byte("one more"))
				if bytes.Equal(inOrder.Registers(), want) {
					t.Error("one more item left the registers of 100 items unchanged")
				}
			}
		})
	}
}

func newHLL(t *testing.T) *sketch.HLL {
	t.Helper()
	h, err := sketch.NewHLL(sketch.DefaultPrecision)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func roundTrip(t *testing.T, h *sketch.HLL) *sketch.HLL {
	t.Helper()
	b, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sketch.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*sketch.HLL)
}
