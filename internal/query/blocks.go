package query

import "github.com/sketchd/sketchd"

// blockPanes is the width of a rollup block in panes (15 one-minute panes:
// a quarter of an hour, so hours and days are whole blocks). Blocks are
// epoch-aligned: a block starts at a multiple of blockPanes × granularity.
const blockPanes = 15

// blockStandsForPanes is the rule behind rollup blocks, and the one place
// that claims a block gives the same result as its panes: the merge of the
// block of panes [bs, bs + blockPanes × granularity) may stand for those
// panes in the windows of g under the committed watermark wm when
//
//  1. the block is final at wm (sketchd.Stream.WindowFinalAt), so none of
//     its panes can change and a merge cached once stays right; and
//  2. every window of g that contains one of its panes contains all of
//     them, and one does: each window then merges the same panes whether
//     it takes them one by one or as the block.
//
// The windows containing a pane form a range whose ends never decrease as
// the pane's start grows (geometry.windowsOf), so it is enough that the
// block's first and last panes lie in the same windows.
//
// A window then merges the same panes in another order and grouping: HLL
// registers, count-min counters and reservoir samples come out the same,
// t-digest quantiles within the digest's rank error, and count-min top-k
// candidates no worse (none is dropped by an intermediate ranking).
// TestBlockStandsForPanes checks the rule against its definition;
// TestQueryBlocksMatchPanes checks whole results against merging every pane.
func (g geometry) blockStandsForPanes(spec *sketchd.Stream, bs, wm int64) bool {
	gran := int64(spec.Granularity)
	end := bs + blockPanes*gran
	if !spec.WindowFinalAt(end, wm) {
		return false
	}
	lo, hi := g.windowsOf(bs)
	lastLo, lastHi := g.windowsOf(end - gran)
	return lo < hi && lo == lastLo && hi == lastHi
}

// blocks returns the starts of the blocks of the scan range that may stand
// for their panes at watermark wm, in order.
func (g geometry) blocks(spec *sketchd.Stream, wm int64) []int64 {
	bw := blockPanes * int64(spec.Granularity)
	var out []int64
	for bs := floorDiv(g.scanFrom()+bw-1, bw) * bw; bs <= g.to-bw; bs += bw {
		if !spec.WindowFinalAt(bs+bw, wm) {
			break // nor is any later block
		}
		if g.blockStandsForPanes(spec, bs, wm) {
			out = append(out, bs)
		}
	}
	return out
}
