package sketch

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestStrongestIsSortedPrefix: the k strongest candidates, sorted, are the
// first k of all of them sorted (what setCands kept before it selected),
// with ties in the estimate broken by item, for k below, at and above the
// number of candidates.
func TestStrongestIsSortedPrefix(t *testing.T) {
	const seed = 15
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, n := range []int{0, 1, 15, 16, 17, 80, 1000, 5000} {
		for _, k := range []int{1, 16, 80} {
			t.Run(fmt.Sprintf("n=%d/k=%d", n, k), func(t *testing.T) {
				cs := make([]cand, n)
				for i := range cs {
					// Few distinct estimates: many ties, broken by item.
					cs[i] = cand{item: fmt.Sprintf("/p/%d", rng.IntN(1_000_000)), est: uint64(rng.IntN(4) + rng.IntN(3)*rng.IntN(50))}
				}
				cs = slices.CompactFunc(slices.SortedFunc(slices.Values(cs), func(a, b cand) int { return cmp.Compare(a.item, b.item) }), func(a, b cand) bool { return a.item == b.item })
				rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
				want := slices.Clone(cs)
				slices.SortFunc(want, strongerCand)
				want = want[:min(k, len(want))]
				got := strongest(slices.Clone(cs), k)
				slices.SortFunc(got, strongerCand)
				if !slices.Equal(got, want) {
					t.Fatalf("strongest %d of %d: got %v, want %v", k, len(cs), got, want)
				}
			})
		}
	}
}
