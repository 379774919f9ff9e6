package sketch_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestHLLDecodedMergesAlike: a decoded sparse HLL keeps the bytes it was
// decoded from, and MergeAll (MergeMany, and mergeLargeSparse for one
// operand) reads its keys from them instead of encoding it again. Merging
// decoded panes must give what merging the same panes without their bytes
// gives (copies made by Merge into an empty HLL), on both sides of the
// sparse-to-dense switch; and a decoded HLL changed after its decode
// (an insert, a merge) must not be read from its stale bytes: the merge
// keeps the item inserted after the decode.
func TestHLLDecodedMergesAlike(t *testing.T) {
	seed := uint64(61206)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, c := range []struct{ parts, perPart, universe int }{
		{1, 200, 1_000},      // one operand
		{15, 200, 100_000},   // a rollup block of panes: sparse
		{60, 400, 1_000_000}, // the union turns dense
	} {
		t.Run(fmt.Sprintf("%dx%d_of_%d", c.parts, c.perPart, c.universe), func(t *testing.T) {
			var decoded, plain []sketch.Sketch
			for range c.parts + 2 { // the last one for the change below
				h := newHLL(t)
				for range 1 + rng.IntN(c.perPart) {
					h.Insert(fmt.Appendf(nil, "u%d", rng.IntN(c.universe)))
				}
				d := roundTrip(t, h)
				p := newHLL(t)
				if err := p.Merge(d); err != nil {
					t.Fatal(err)
				}
				decoded, plain = append(decoded, d), append(plain, p)
			}
			a, b := decoded[0].Clone(), plain[0].Clone()
			if err := sketch.MergeAll(a, decoded[1:c.parts+1]...); err != nil {
				t.Fatal(err)
			}
			if err := sketch.MergeAll(b, plain[1:c.parts+1]...); err != nil {
				t.Fatal(err)
			}
			sameHLL(t, "merged", a.(*sketch.HLL), b.(*sketch.HLL))

			changed := roundTrip(t, decoded[c.parts+1].(*sketch.HLL))
			changed.Insert([]byte("inserted after the decode"))
			merged := newHLL(t)
			if err := sketch.MergeAll(merged, changed, decoded[1]); err != nil {
				t.Fatal(err)
			}
			want := newHLL(t)
			for _, s := range []sketch.Sketch{changed, decoded[1]} {
				if err := want.Merge(s); err != nil {
					t.Fatal(err)
				}
			}
			sameHLL(t, "inserted after the decode", merged, want)
		})
	}
}

func sameHLL(tb testing.TB, what string, a, b *sketch.HLL) {
	tb.Helper()
	if a.Count() != b.Count() || a.Estimate() != b.Estimate() || !bytes.Equal(a.Registers(), b.Registers()) {
		tb.Fatalf("%s: count %d estimate %+v, want %d %+v (registers equal: %v)",
			what, a.Count(), a.Estimate(), b.Count(), b.Estimate(), bytes.Equal(a.Registers(), b.Registers()))
	}
}
