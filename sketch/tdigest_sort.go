package sketch

import "math/bits"

// sortCentroids sorts cs by (mean, weight): an introsort (quicksort with a
// median-of-three pivot, insertion sort for short runs, heapsort past a
// depth bound) with the comparison inlined. slices.SortFunc calls its
// comparison through a func value: sorting a t-digest's buffer of 500
// values with it was a third of a buffered Add (BenchmarkTDigest/Add).
// Centroids that compare equal are identical, so any correct sort gives
// the same result.
func sortCentroids(cs []centroid) { introsortCentroids(cs, 2*bits.Len(uint(len(cs)))) }

// insertionBelow is the run length below which introsortCentroids sorts by
// insertion.
const insertionBelow = 12

func introsortCentroids(cs []centroid, depth int) {
	for len(cs) > insertionBelow {
		if depth == 0 {
			heapsortCentroids(cs)
			return
		}
		depth--
		p := partitionCentroids(cs)
		// Recurse into the shorter side, loop on the longer: the stack
		// stays logarithmic.
		if p < len(cs)-1-p {
			introsortCentroids(cs[:p], depth)
			cs = cs[p+1:]
		} else {
			introsortCentroids(cs[p+1:], depth)
			cs = cs[:p]
		}
	}
	insertionSortCentroids(cs)
}

// partitionCentroids partitions cs (at least 3 long) around the median of
// its first, middle and last centroids and returns the pivot's final
// index: nothing before it is greater, nothing after it is less.
func partitionCentroids(cs []centroid) int {
	a, b, c := 0, len(cs)/2, len(cs)-1
	if lessCentroid(&cs[b], &cs[a]) {
		cs[a], cs[b] = cs[b], cs[a]
	}
	if lessCentroid(&cs[c], &cs[b]) {
		cs[b], cs[c] = cs[c], cs[b]
		if lessCentroid(&cs[b], &cs[a]) {
			cs[a], cs[b] = cs[b], cs[a]
		}
	}
	cs[0], cs[b] = cs[b], cs[0]
	p := cs[0]
	i, j := 1, len(cs)-1
	for {
		for i <= j && lessCentroid(&cs[i], &p) {
			i++
		}
		for i <= j && lessCentroid(&p, &cs[j]) {
			j--
		}
		if i >= j {
			break
		}
		cs[i], cs[j] = cs[j], cs[i]
		i++
		j--
	}
	cs[0], cs[j] = cs[j], cs[0]
	return j
}

func insertionSortCentroids(cs []centroid) {
	for i := 1; i < len(cs); i++ {
		x := cs[i]
		j := i
		for j > 0 && lessCentroid(&x, &cs[j-1]) {
			cs[j] = cs[j-1]
			j--
		}
		cs[j] = x
	}
}

func heapsortCentroids(cs []centroid) {
	n := len(cs)
	for i := n/2 - 1; i >= 0; i-- {
		siftDownCentroids(cs, i, n)
	}
	for end := n - 1; end > 0; end-- {
		cs[0], cs[end] = cs[end], cs[0]
		siftDownCentroids(cs, 0, end)
	}
}

// siftDownCentroids restores the max-heap order of cs[:n] below root.
func siftDownCentroids(cs []centroid, root, n int) {
	for {
		child := 2*root + 1
		if child >= n {
			return
		}
		if child+1 < n && lessCentroid(&cs[child], &cs[child+1]) {
			child++
		}
		if !lessCentroid(&cs[root], &cs[child]) {
			return
		}
		cs[root], cs[child] = cs[child], cs[root]
		root = child
	}
}
