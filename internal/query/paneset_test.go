package query

import (
	"math/rand/v2"
	"testing"
)

// TestEndPanesIsTheSetOfTheEnds: endPanes holds exactly the (key, pane)
// pairs added whose pane is in the ragged ends within the read range, as
// the map of pane ids it replaced did (filtered by raggedEnds.contains),
// for heads and edges that overlap, touch, are apart, empty, or cut by
// the range.
func TestEndPanesIsTheSetOfTheEnds(t *testing.T) {
	seed := uint64(1206)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	const gran, keys = 10, 7
	for round := range 300 {
		at := func() int64 { return int64(rng.IntN(60)) * gran }
		re := raggedEnds{from: at(), headHi: at(), edgeLo: at(), edgeHi: at()}
		rg := [2]int64{at(), at()}
		s := newEndPanes(re, rg, gran, keys)
		want := map[[2]int64]bool{}
		for range 100 {
			ki, start := rng.IntN(keys), at()
			s.add(ki, start)
			if start >= rg[0] && start < rg[1] && re.contains(start) {
				want[[2]int64{int64(ki), start}] = true
			}
		}
		for ki := range keys {
			for start := int64(0); start < 60*gran; start += gran {
				if got := s.has(ki, start); got != want[[2]int64{int64(ki), start}] {
					t.Fatalf("round %d: ends %+v range %v: has(%d, %d) = %v", round, re, rg, ki, start, got)
				}
			}
		}
	}
}
