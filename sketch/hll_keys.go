package sketch

import "slices"

// Sorting sparse HLL keys. MergeMany unions the sparse keys of its
// operands, most of them from temporary sets (a pane's keys, in hash-set
// order), and sorting them with slices.Sort was the largest part of the
// cold computation of a 24-hour series of distinct counts
// (BenchmarkFirstSeries/hll_24h_series in internal/query): a window
// collects tens of thousands of keys, and each compaction sorted all the
// keys collected so far again. Keys are integers, so the sorted result is
// the same whatever the algorithm (TestSortKeysMatchesSlicesSort): here an
// LSD radix sort, linear in the keys, and compactions that sort only the
// keys added since the last one and merge them with the sorted rest.

// hllKeys holds the key slices of MergeMany's unions and of
// mergeLargeSparse (scratch.go).
var hllKeys = newScratchPool[uint32]()

// radixMin is the length below which sortKeys leaves the work to
// slices.Sort: the radix sort's 4 KB of counters and its scratch copy do
// not pay for a few hundred keys.
const radixMin = 256

// sortKeys sorts keys ascending (as slices.Sort does), using scratch (grown
// as needed, returned for reuse) for the radix sort's passes.
func sortKeys(keys, scratch []uint32) []uint32 {
	if len(keys) < radixMin {
		slices.Sort(keys)
		return scratch
	}
	var counts [4][256]int
	for _, k := range keys {
		counts[0][k&0xff]++
		counts[1][k>>8&0xff]++
		counts[2][k>>16&0xff]++
		counts[3][k>>24]++
	}
	scratch = slices.Grow(scratch[:0], len(keys))[:len(keys)]
	src, dst := keys, scratch
	for pass := range 4 {
		shift := 8 * uint(pass)
		c := &counts[pass]
		if c[src[0]>>shift&0xff] == len(src) {
			continue // every key has the same byte here: the pass keeps the order
		}
		sum := 0
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for _, k := range src {
			b := k >> shift & 0xff
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
	return scratch
}

// compactKeys returns keys with its tail keys[done:] sorted, deduplicated
// and merged with its head keys[:done] (sorted and distinct already): the
// sorted distinct keys, which may be spare's array, and a spare array for
// the next call (which may be keys').
func compactKeys(keys []uint32, done int, spare []uint32) (out, spare2 []uint32) {
	tail := keys[done:]
	if len(tail) == 0 {
		return keys, spare
	}
	spare = sortKeys(tail, spare)
	tail = slices.Compact(tail)
	if done == 0 {
		return tail, spare
	}
	head := keys[:done]
	out = slices.Grow(spare[:0], len(head)+len(tail))
	i, j := 0, 0
	for i < len(head) && j < len(tail) {
		switch a, b := head[i], tail[j]; {
		case a < b:
			out = append(out, a)
			i++
		case b < a:
			out = append(out, b)
			j++
		default:
			out = append(out, a)
			i++
			j++
		}
	}
	out = append(append(out, head[i:]...), tail[j:]...)
	return out, keys[:0]
}
