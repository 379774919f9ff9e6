package sketch_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestHLLMergeManyMatchesMerge: MergeAll of HLLs (the sparse-union path
// while every operand is sparse) gives the estimate and count of repeated
// Merge, on either side of the sparse-to-dense switch, with dense operands
// mixed in, and the result keeps behaving the same under further inserts
// and through its encoding.
func TestHLLMergeManyMatchesMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		parts, perPart, universe int
		p                        uint8
	}{
		{2, 10, 50, 14},
		{60, 20, 5_000, 14},
		{96, 200, 3_000, 14},
		{40, 300, 100_000, 14},    // about 6,000 distinct: sparse
		{60, 600, 1_000_000, 14},  // about 18,000 distinct: the union turns dense
		{10, 20_000, 300_000, 14}, // dense operands
		{200, 50, 1_000_000, 10},
		{30, 500, 20_000, 18},
	} {
		t.Run(fmt.Sprintf("%dx%d_of_%d_p%d", c.parts, c.perPart, c.universe, c.p), func(t *testing.T) {
			parts := make([]sketch.Sketch, c.parts)
			for i := range parts {
				h, err := sketch.NewHLL(c.p)
				if err != nil {
					t.Fatal(err)
				}
				for range rng.IntN(c.perPart + 1) {
					h.Insert(fmt.Appendf(nil, "u%d", rng.IntN(c.universe)))
				}
				parts[i] = h
			}
			before := make([][]byte, len(parts))
			for i, p := range parts {
				before[i], _ = p.AppendBinary(nil)
			}
			seq := parts[0].Clone().(*sketch.HLL)
			for _, p := range parts[1:] {
				if err := seq.Merge(p); err != nil {
					t.Fatal(err)
				}
			}
			all := parts[0].Clone().(*sketch.HLL)
			if err := sketch.MergeAll(all, parts[1:]...); err != nil {
				t.Fatal(err)
			}
			check := func(when string, a, b *sketch.HLL) {
				t.Helper()
				ea, eb := a.Estimate(), b.Estimate()
				if a.Count() != b.Count() || ea != eb {
					t.Fatalf("%s: MergeAll count %d estimate %+v, Merge %d %+v", when, a.Count(), ea, b.Count(), eb)
				}
			}
			check("merged", all, seq)
			blob, err := all.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			back, err := sketch.Decode(blob)
			if err != nil {
				t.Fatal(err)
			}
			check("decoded", back.(*sketch.HLL), seq)
			for range 5_000 {
				item := fmt.Appendf(nil, "v%d", rng.IntN(3*c.universe))
				all.Insert(item)
				seq.Insert(item)
			}
			check("after inserts", all, seq)
			// MergeAll only reads its sources.
			for i, p := range parts {
				if b, _ := p.AppendBinary(nil); string(b) != string(before[i]) {
					t.Fatalf("part %d changed", i)
				}
			}
		})
	}
}
