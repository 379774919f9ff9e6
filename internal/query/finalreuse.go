package query

import (
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// The pane that turned final: at the commit that moves the watermark a
// minute, each key's oldest open pane turns final, and the first question
// after it reads that pane from the store as final and decoded it again
// (the pane cache keeps final panes only), though the memo's previous
// state decoded it as open a commit before. When the stored blob is the
// bytes that state decoded, its sketch is taken from there, as an open
// tail's unchanged panes are (tail.decodedAs: equal bytes decode to equal
// sketches, shared and only read), and kept in the pane cache. A pane
// that the minute's commit changed (a late event) is decoded as before.
// Part of the minute move's decodes (BenchmarkDashboardMinuteMove: the
// pane that turned final, one per key and aggregate; TestFinalPaneReuse).
// The same holds for the panes of a rollup block built from them
// (decodeBlockPane). The scan asks the pane cache (paneCache.decode) with
// decodedBefore as the sketch decoded earlier.

// decodeBlockPane returns the decoded sketch of r, a pane of a rollup
// block being built (final): from the pane cache when a question over
// single panes (a series at the pane's width) decoded it before, or from
// the memo's previous state, else decoded. It is not cached: the block
// is. A block is built the minute its last pane turns final, when the
// stretch of an hour's window grows by it, and decoded its 15 panes of
// every key again though the pane cache or the memo held most of them
// (TestBlockPanesFromCache).
//
// A sketch it decodes takes a t-digest's values from arena: the block
// merge copies what it keeps, and the pane is dropped with the block's
// parts (finishBlock resets the arena).
func (q *Querier) decodeBlockPane(p *plan, r *sketchd.PaneRecord, blob []byte, arena *sketch.DecodeArena) (sketch.Sketch, error) {
	if v, ok := q.cache.get(p.paneID(r.Key, r.Start)); ok {
		return v.sk, nil
	}
	if sk := q.tails.decodedBefore(p, r.Key, r.Start, p.agg.index, blob); sk != nil {
		return sk, nil
	}
	return p.agg.decodeIn(blob, arena)
}

// decodedBefore returns the sketch of slot of key's pane at start that
// the newest state of p's stream other than p's own decoded, when the
// blob it decoded is blob; else nil. Unlike previous, it leaves that
// state's tails as they are.
func (m *tailMemo) decodedBefore(p *plan, key string, start int64, slot int, blob []byte) sketch.Sketch {
	m.mu.Lock()
	old := m.otherState(p, key)
	m.mu.Unlock()
	return old.decodedAs(start, slot, blob)
}
