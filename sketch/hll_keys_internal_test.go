package sketch

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortKeysMatchesSlicesSort: the radix sort of sparse keys gives what
// slices.Sort gives, and compactKeys what sorting and compacting the
// whole gives, for lengths on both sides of radixMin, with duplicates,
// keys sharing bytes (passes skipped) and the full 32-bit range.
func TestSortKeysMatchesSlicesSort(t *testing.T) {
	seed := uint64(1206)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	gens := map[string]func() uint32{
		"uniform":    rng.Uint32,
		"duplicates": func() uint32 { return uint32(rng.IntN(300)) * 7919 },
		"low bytes":  func() uint32 { return 0xabcd0000 | uint32(rng.IntN(1<<16)) },
		"one value":  func() uint32 { return 42 },
	}
	var scratch []uint32
	for name, gen := range gens {
		for _, n := range []int{0, 1, 2, radixMin - 1, radixMin, 1000, 40_000} {
			keys := make([]uint32, n)
			for i := range keys {
				keys[i] = gen()
			}
			want := slices.Clone(keys)
			slices.Sort(want)
			got := slices.Clone(keys)
			scratch = sortKeys(got, scratch)
			if !slices.Equal(got, want) {
				t.Fatalf("%s, %d keys: sortKeys differs from slices.Sort", name, n)
			}
			for _, done := range []int{0, n / 3, n} {
				var head []uint32 // sorted and distinct, as compactKeys wants it
				if done > 0 {
					head = slices.Compact(slices.Sorted(slices.Values(keys[:done])))
				}
				in := append(slices.Clone(head), keys[done:]...)
				all := slices.Compact(slices.Sorted(slices.Values(in)))
				out, _ := compactKeys(in, len(head), nil)
				if !slices.Equal(out, all) {
					t.Fatalf("%s, %d keys, %d done: compactKeys differs from sorting the whole", name, n, done)
				}
			}
		}
	}
}
