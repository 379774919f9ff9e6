package sketch

// DecodeArena holds the centroids and buffered values of t-digests decoded
// with DecodeIn, in one growing slice instead of one allocation each. A
// query rebuilding a rollup block decodes its panes, merges them into the
// block and drops them (internal/query, blockBuild): their centroids,
// about 3 KB a pane at a live stream's density, were a quarter of the
// bytes the cold computation of a series of quantiles allocated
// (BenchmarkFirstSeries/tdigest_24h_series). Sketches decoded in an arena
// must not be used after its Reset; a merge into another sketch copies
// what it keeps, so the merged sketch does not depend on the arena. The
// zero DecodeArena is ready; a nil one allocates as Decode does.
type DecodeArena struct {
	cs []centroid
}

// Reset makes the arena's memory available again: every sketch decoded
// in it since the last Reset must be dropped.
func (a *DecodeArena) Reset() {
	if a != nil {
		a.cs = a.cs[:0]
	}
}

// centroids returns an empty slice with room for k centroids, from the
// arena (capped at k, so that an append to it moves out instead of
// writing over the next sketch's) or, for a nil arena, allocated.
func (a *DecodeArena) centroids(k int) []centroid {
	if a == nil {
		return make([]centroid, 0, k)
	}
	if cap(a.cs)-len(a.cs) < k {
		// The old array stays with the sketches decoded in it.
		a.cs = make([]centroid, 0, max(2*cap(a.cs), k, 1024))
	}
	n := len(a.cs)
	a.cs = a.cs[:n+k]
	return a.cs[n : n : n+k]
}
