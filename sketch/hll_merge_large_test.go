package sketch_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestHLLMergeLargeSparseBytes: merging one sparse HLL into another
// (MergeAll with one source, as a window's final part is merged into its
// open part) gives the bytes, count and estimate of the library's own
// Merge, whether the source is small (the library keeps a temporary set),
// large (the sorted union), or past the dense switch, and whether the
// destination is small, large, already holds a temporary set, or is
// dense.
func TestHLLMergeLargeSparseBytes(t *testing.T) {
	const seed = 14
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	fill := func(p uint8, n, universe int, parts int) *sketch.HLL {
		h, err := sketch.NewHLL(p)
		if err != nil {
			t.Fatal(err)
		}
		for range parts { // merged parts: a sorted list, as the query's caches hold them
			part, _ := sketch.NewHLL(p)
			for range n / max(parts, 1) {
				part.Insert(fmt.Appendf(nil, "u%d", rng.IntN(universe)))
			}
			if err := h.Merge(part); err != nil {
				t.Fatal(err)
			}
		}
		for range n - n/max(parts, 1)*parts { // the rest inserted: a temporary set
			h.Insert(fmt.Appendf(nil, "u%d", rng.IntN(universe)))
		}
		return h
	}
	for _, c := range []struct {
		name            string
		p               uint8
		dst, src        int // items
		dstParts, parts int
		universe        int // 0: a million (few shared keys)
	}{
		{"small_into_small", 14, 50, 100, 0, 0, 0},
		{"just_under_tmp_limit", 14, 10, 160, 0, 1, 0},
		{"just_over_tmp_limit", 14, 10, 170, 0, 1, 0},
		{"large_into_small", 14, 100, 3_000, 0, 4, 0},
		{"large_into_tmpset", 14, 60, 5_000, 0, 8, 0},
		{"large_into_large", 14, 4_000, 4_000, 3, 5, 0},
		{"union_turns_dense", 14, 5_000, 7_000, 2, 6, 0},
		{"large_into_dense", 14, 30_000, 3_000, 6, 3, 0},
		{"overlapping", 14, 2_000, 3_000, 2, 3, 4_000},
		{"overlapping_tmpset", 14, 150, 3_000, 0, 3, 2_000},
		{"p10", 10, 20, 400, 0, 2, 0},
		{"p18", 18, 3_000, 20_000, 2, 7, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := c.universe
			if u == 0 {
				u = 1_000_000
			}
			dst := fill(c.p, c.dst, u, c.dstParts)
			src := fill(c.p, c.src, u, c.parts)
			lib := dst.Clone().(*sketch.HLL)
			if err := lib.Merge(src); err != nil {
				t.Fatal(err)
			}
			got := dst.Clone().(*sketch.HLL)
			if err := sketch.MergeAll(got, src); err != nil {
				t.Fatal(err)
			}
			gb, _ := got.AppendBinary(nil)
			lb, _ := lib.AppendBinary(nil)
			if string(gb) != string(lb) {
				t.Fatalf("bytes differ: %d vs the library's %d", len(gb), len(lb))
			}
			if got.Count() != lib.Count() || got.Estimate() != lib.Estimate() {
				t.Fatalf("count %d estimate %+v, library %d %+v", got.Count(), got.Estimate(), lib.Count(), lib.Estimate())
			}
		})
	}
}
