package api

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// parseSeed reads seed: an unsigned 64-bit integer that picks a
// reproducible subsample when n is smaller than the stored sample. A
// weighted sample's subsample must follow its weights (its own order
// does), so seed is refused there.
func parseSeed(v url.Values, agg sketchd.Aggregate) (*uint64, error) {
	vals, ok := v["seed"]
	if !ok {
		return nil, nil
	}
	if len(vals) != 1 {
		return nil, paramError("seed", "given %d times; give it once", len(vals))
	}
	if agg.Weight != "" {
		return nil, paramError("seed", "a weighted sample's subsample is the first n in its own weighted order; seed applies to unweighted reservoirs")
	}
	s, err := strconv.ParseUint(vals[0], 10, 64)
	if err != nil {
		return nil, paramError("seed", "want an unsigned 64-bit integer, got %q", vals[0])
	}
	return &s, nil
}

// subsample returns the items to list: all, or n of them. Without a seed
// they are the first n in the sample's own (uniformly random, fixed)
// order; with one, the n whose tags hash lowest under the seed: another
// uniform subsample, the same for the same seed and sample.
func subsample(sk *sketch.Reservoir, p queryParams) [][]byte {
	items := sk.Sample()
	if p.n < 0 || p.n >= len(items) {
		return items
	}
	if p.seed == nil {
		return items[:p.n]
	}
	tags := sk.Tags()
	idx := make([]int, len(items))
	keys := make([]uint64, len(items))
	for i := range idx {
		idx[i], keys[i] = i, mix(tags[i]^*p.seed)
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	out := make([][]byte, p.n)
	for j, i := range idx[:p.n] {
		out[j] = items[i]
	}
	return out
}

// mix is splitmix64's finalizer: a bijection that scatters nearby inputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// stratum states how the listed items relate to the population of their
// window and group (their stratum): each of the population's events had
// the same chance, returned / population, to be listed. It is null for a
// weighted sample (each event's chance follows its weight) and when the
// byte budget cut the sample (items were left out by size, not by chance).
func (a *reservoirAnswer) stratum(sk *sketch.Reservoir, p queryParams, returned int) {
	a.Stored, a.Returned, a.Seed = len(sk.Sample()), returned, p.seed
	if sk.Params().Weighted || sk.Truncated() || a.Population == 0 {
		return
	}
	pr := float64(returned) / float64(a.Population)
	a.InclusionProbability = &pr
}
