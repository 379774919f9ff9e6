package sketch

import "math/bits"

// Skipping repeated inserts. While an HLL is sparse, the library adds
// every inserted hash's key to its temporary set, also a key its sorted
// list holds already, and whenever the set holds 2^p/100 keys it merges
// them into the list, decoding and re-encoding the whole list. The items
// of a pane repeat (the load runner's user ids are Zipf-distributed), so
// most of those merges rewrote the list unchanged: 126 ns an insert into a
// pane of the runner's one-second run (BenchmarkHLL/InsertZipfPane), a
// tenth of sketchd's CPU per event in BenchmarkDecodeAggregate.
//
// So a sparse HLL that has seen recentAfter inserts remembers the keys it
// inserted in a direct-mapped table (8 KiB) and does not insert a key it
// finds there again: 125 -> 91 ns an insert in InsertZipfPane, a dense
// insert 0.3 ns slower (the dense check). That changes when the library compacts and turns
// dense, and so the encoding (never canonical: see Registers), but no
// answer. A key is the library's own sparse encoding of the hash (index at
// 25 bits and rank), so a key the sketch holds adds nothing to its set; the
// dense registers are a function of that set, whether a hash went in
// while sparse or dense; a sparse estimate counts the set's keys; and
// whether an answer is sparse or dense depends on the set's sorted list
// passing 2^p bytes, which only grows with the set
// (TestHLLSkipsRepeatsSameAnswers).

const (
	recentLen   = 2048
	recentShift = 64 - 11 // a hash's top 11 bits pick its slot
	// recentAfter is the inserts after which an HLL makes its table: the
	// many small panes of a key explosion never make one.
	recentAfter = 1024
	// denseCheckEvery is how often, in inserts, an HLL with a table asks
	// the library whether it turned dense (an encoding of its header and
	// sparse state), to drop the table then: dense inserts are cheap.
	denseCheckEvery = 4096
)

// repeat reports whether x's sparse key is one h, not known to be dense,
// inserted before, as far as its table remembers, and records it.
func (h *HLL) repeat(x uint64) bool {
	if h.recent == nil {
		if h.n < recentAfter {
			return false
		}
		h.recent = make([]uint32, recentLen)
	}
	if h.n%denseCheckEvery == 0 && !h.isSparse() {
		h.dense, h.recent = true, nil
		return false
	}
	k := sparseKey(x, h.p)
	slot := &h.recent[x>>recentShift]
	if *slot == k {
		return true
	}
	*slot = k
	return false
}

// sparseKey is the library's sparse encoding of a hash at precision p
// (hyperloglog's encodeHash; part of its pinned version 2 format): the top
// 25 bits as the index, with the rank appended when the bits between p and
// 25 are all zero. It is never 0, the table's empty slot.
func sparseKey(x uint64, p uint8) uint32 {
	const pp = sparsePrecision
	idx := uint32(x >> (64 - pp))
	if (x>>(64-pp))&(1<<(pp-p)-1) == 0 {
		zeros := bits.LeadingZeros64(x<<pp|(1<<pp-1)) + 1
		return idx<<7 | uint32(zeros<<1) | 1
	}
	return idx << 1
}
