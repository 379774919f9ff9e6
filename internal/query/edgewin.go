package query

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/sketchd/sketchd/sketch"
)

// The edge window: the window of a tumbling series that holds the open
// tail's first pane (tailFrom) and final panes before it. The window cache
// keeps final windows only, so after every commit a whole-range question
// over the last hour, or the last window of a series with long steps,
// merged every key's blocks and final panes of that window again: work
// proportional to the range, not to the open panes, and most of the query
// load's CPU after the tail memo.
//
// Its final part, [start, tailFrom), changes with nothing but tailFrom (it
// is final); so answer computes it once per shape, window and tailFrom
// (splitEdge, edgePart: its prefix as a plan of its own merged with its
// last pane, below), and keeps it in the window cache beside the final
// windows (edgeKey); the rest of the question, from tailFrom on (the open
// tail, and the windows after), is computed as before, and the edge
// window of each group is its open part merged with its final part
// (addEdge). The windows before the edge are computed and
// cached first when the cache did not hold them (finalBefore), so the
// split is the same whatever the cache holds.
// tailFrom moves with the watermark, a pane at a time, so a dashboard
// merges each edge window's final part about once a minute instead of
// after every commit. A window merges the same panes either way, and for
// the kinds whose merges are exact (HLL registers, count-min counters,
// reservoir samples...) the sketch comes out the same
// (TestEdgeWindowEqualsWhole). A t-digest's merges are approximate
// (sketch.KindInfo.MergeApprox): merged at the aggregate's compression,
// the final part and then the window add a level of compression, and the
// rank bounds its answers state missed the truth (TestQueryTDigestRankMeanTrim
// and TestOrderByLimit in internal/api). So its final part is merged at
// finerCompression times the compression, which keeps about every
// centroid of its panes and blocks, and the window's merge compresses once
// more, as a whole merge does.

// splitEdge returns, when the first window of sub (a plan of the windows
// after the cached ones) holds final panes and the open tail's first pane,
// the plan of its final part and that of the rest from tailFrom on.
func (q *Querier) splitEdge(sub *plan) (edge, rest *plan, ok bool) {
	k, tailFrom, merge, ok := q.edgeWindow(sub)
	if !ok || k != 0 {
		return nil, nil, false
	}
	start, _ := sub.geom.bounds(0)
	edge = sub.cut(geometry{from: start, to: tailFrom, step: tailFrom - start, window: tailFrom - start, n: 1})
	edge.shape, edge.merge = "", merge
	g := sub.geom
	g.floor, g.hasFloor = tailFrom, true
	return edge, sub.cut(g), true
}

// edgeWindow returns the index in p of its edge window, the open tail's
// first pane (tailFrom) and the parameters its final part is merged at,
// when p's windows may be split there: tumbling, cacheable, a kind whose
// final part can be merged apart (finerParams), a known tail start
// strictly inside a window. Not tailFrom: the split must not depend on
// whether the stream has committed since the process started, or a
// t-digest's answer would change across a restart (TestEndToEnd in
// cmd/sketchd).
func (q *Querier) edgeWindow(p *plan) (k int, tailFrom int64, merge *sketch.Params, ok bool) {
	if q.wins == nil || !p.winCacheable() {
		return 0, 0, nil, false
	}
	if merge, ok = finerParams(p.agg); !ok {
		return 0, 0, nil, false
	}
	if tailFrom, ok = p.edgeFrom(); !ok {
		return 0, 0, nil, false
	}
	k = int(floorDiv(tailFrom-p.geom.from, p.geom.step))
	if k < 0 || k >= p.geom.n {
		return 0, 0, nil, false
	}
	if start, _ := p.geom.bounds(k); tailFrom == start {
		return 0, 0, nil, false // the window is all open, those before all final
	}
	return k, tailFrom, merge, true
}

// finalBefore computes the windows of sub (the windows after those the
// window cache held) before its edge window, k of them, all final, and
// caches them; it returns them as cached windows. Whether the cache held
// them or not, the edge window is then the first one computed and is
// split the same way: what the cache holds never changes a result
// (TestQueryBlocksMatchPanes).
func (q *Querier) finalBefore(ctx context.Context, sub *plan, k int) ([]map[string]winGroup, error) {
	mid := sub.cut(geometry{from: sub.geom.from, to: sub.geom.from + int64(k)*sub.geom.step, step: sub.geom.step, window: sub.geom.window, n: k})
	if err := q.chooseTiers(ctx, mid); err != nil {
		return nil, err
	}
	res, err := q.compute(ctx, mid)
	if err != nil {
		return nil, err
	}
	return q.wins.store(mid, res), nil
}

// finerCompression is how much finer than the aggregate's compression the
// final part of a t-digest's edge window is merged.
const finerCompression = 4

// finerParams returns the parameters the final part of an edge window of
// a is merged at (nil: the aggregate's), and whether it may be split: not
// when a's merges are approximate and the finer compression is past the
// kind's range.
func finerParams(a aggregate) (*sketch.Params, bool) {
	if !a.mergeApprox() {
		return nil, true
	}
	in, ok := a.params.Kind.Info()
	if !ok {
		return nil, false
	}
	c, ok := in.Param("compression")
	p := a.params
	p.Compression *= finerCompression
	if !ok || c.Check(p.Compression) != "" {
		return nil, false
	}
	return &p, true
}

// cut returns a copy of p over geometry g, its spans, blocks and scans
// left to chooseTiers and planScans, its groups its own.
func (p *plan) cut(g geometry) *plan {
	s := *p
	s.geom = g
	s.blocks, s.scans, s.spans = nil, nil, nil
	s.groups = slices.Clone(p.groups)
	return &s
}

// The final part of an edge window, [start, tailFrom), is cut by its
// geometry alone into its prefix [start, tailFrom-pane) and its last pane
// (when the prefix is not empty): the prefix is computed as a plan of its
// own (from its pieces) and kept in the window cache under prefixKey, the
// pane as a single-pane piece of the family (pieces.go), and the final
// part is their merge, kept under edgeKey. So at the minute's commit,
// when tailFrom or the window's start moves a pane, the new final part's
// prefix is one that was final before the move: computed then in the
// background (ahead.go), the move merges two parts per group,
// the prefix and the pane that turned final, instead of the ~25 pieces
// of the whole final part. The refreshes within the minute merge the
// final part into the open part, one sketch per group (merging the
// prefix and the pane into it instead cost them 36% more CPU at the dense
// density: a dense sketch's merge costs its size). The cut never depends
// on what the cache holds or on whether the prefix was computed ahead, so
// answers do not either (TestAheadEqualsWhole).

// edgeKey names the final part of the edge window of shape starting at
// start and cut at tailFrom in the window cache; prefixKey its prefix
// [start, end).
func edgeKey(shape string, start, tailFrom int64) winKey {
	b := append([]byte(shape), "\x00edge"...)
	return winKey{shape: string(binary.AppendVarint(b, tailFrom)), start: start}
}

func prefixKey(shape string, start, end int64) winKey {
	b := append([]byte(shape), "\x00prefix"...)
	return winKey{shape: string(binary.AppendVarint(b, end)), start: start}
}

// edgePart returns the final part of the edge window (edge, a plan of
// [start, tailFrom)), per group: from the window cache, or merged from
// its prefix (when not empty) and its last pane and cached. The prefix,
// merged into it, leaves the cache.
func (q *Querier) edgePart(ctx context.Context, shape string, edge *plan) (map[string]winGroup, error) {
	from, to := edge.geom.from, edge.geom.to
	k := edgeKey(shape, from, to)
	if groups, ok := q.wins.get(k); ok {
		q.stats.edgeHits.Add(1)
		return groups, nil
	}
	q.dropOldEdges(shape, edge)
	gran := int64(edge.target.Spec.Granularity)
	pp, _ := edge.pieceParams() // edgeWindow checked it
	last := piece{to - gran, gran}
	got, err := q.pieces(ctx, edge, pp, []piece{last})
	if err != nil {
		return nil, err
	}
	parts := []map[string]winGroup{got[last]}
	if to-gran > from {
		prefix, err := q.edgePrefix(ctx, shape, edge.cutTo(to-gran))
		if err != nil {
			return nil, err
		}
		parts = append([]map[string]winGroup{prefix}, parts...)
	}
	groups, err := mergeParts(parts, edge.mergeParams())
	if err != nil {
		return nil, err
	}
	for _, part := range parts {
		q.stats.pieceMerged.Add(int64(len(part)))
	}
	q.wins.put(k, groups)
	q.wins.items.remove(prefixKey(shape, from, to-gran))
	return groups, nil
}

// mergeParts merges the parts of a final part (its prefix, its last pane)
// per group at params at. An HLL's merge starts from an empty sketch:
// merging two or more sparse sketches into one unions their keys into
// one sorted list, which each refresh within the minute then merges into
// its open part in one pass (sketch.HLL.mergeLargeSparse); a clone of the
// prefix merged with the pane kept the pane's keys in the library's
// temporary set, and every refresh merged the final part through a hash
// set (BenchmarkDashboardMinuteMoveDense: +68% CPU a refresh).
func mergeParts(parts []map[string]winGroup, at sketch.Params) (map[string]winGroup, error) {
	return mergeGroupParts(parts, at, true)
}

func isHLL(sk sketch.Sketch) bool {
	_, ok := sk.(*sketch.HLL)
	return ok
}

// cutTo returns the plan of the part of edge (one window) before end.
func (p *plan) cutTo(end int64) *plan {
	c := p.cut(geometry{from: p.geom.from, to: end, step: end - p.geom.from, window: end - p.geom.from, n: 1})
	c.shape, c.merge = "", p.merge
	return c
}

// edgePrefix returns the groups of pre, the prefix of an edge window's
// final part: from the window cache, or computed and cached.
func (q *Querier) edgePrefix(ctx context.Context, shape string, pre *plan) (map[string]winGroup, error) {
	k := prefixKey(shape, pre.geom.from, pre.geom.to)
	if groups, ok := q.wins.get(k); ok {
		q.ahead.used(k)
		return groups, nil
	}
	groups, err := q.edgeGroups(ctx, pre)
	if err != nil {
		return nil, err
	}
	q.wins.put(k, groups)
	return groups, nil
}

// dropOldEdges removes from the window cache the final parts of shape
// that the questions before edge's last move used (ahead.go's moves):
// ending a pane before edge and starting where edge does (a fixed anchor)
// or a pane before (an anchor moving with the watermark), or ending where
// edge does and starting a pane before (an anchor that moved with the
// clock). No question asks them again; left to the LRU, one a shape and
// minute crowded out the pieces.
func (q *Querier) dropOldEdges(shape string, edge *plan) {
	gran := int64(edge.target.Spec.Granularity)
	from, to := edge.geom.from, edge.geom.to
	q.wins.items.remove(edgeKey(shape, from, to-gran))
	q.wins.items.remove(edgeKey(shape, from-gran, to-gran))
	q.wins.items.remove(edgeKey(shape, from-gran, to))
}

// edgeGroups computes the final part of an edge window, per group: from
// its pieces (pieces.go) when it is more than one, else merged whole.
func (q *Querier) edgeGroups(ctx context.Context, edge *plan) (map[string]winGroup, error) {
	if edge.family != "" && len(cutPieces(edge.pieceWidths(), edge.geom.from, edge.geom.to)) > 1 {
		wins, err := q.mergePieces(ctx, edge, [][2]int64{{edge.geom.from, edge.geom.to}}, edge.mergeParams())
		if err != nil {
			return nil, err
		}
		if wins != nil {
			return wins[0], nil
		}
	}
	if err := q.chooseTiers(ctx, edge); err != nil {
		return nil, err
	}
	res, err := q.compute(ctx, edge)
	if err != nil {
		return nil, err
	}
	return windowGroups(res, 0, edge.sel.groupBy, false), nil
}

// addEdge merges the final part of the edge window into the first window
// of each group of rest (computed from tailFrom on; its sketches are its
// own). For a count-min the open part, the smaller, is merged into a copy
// of the final part: a copy of its exact counts is cheaper than adding
// each of them to the open part's, and its encoding is sorted, so the
// sketch's bytes are the same either way. Not for an HLL: its sparse
// encoding depends on the order of merges, and an exported window's bytes
// must not depend on where the edge was cut (TestAlterBackfillResumes in
// internal/ingest compares them with a reference stream's).
func addEdge(rest *Result, part map[string]winGroup, groupBy []string) error {
	for gi := range rest.Groups {
		g := &rest.Groups[gi]
		pg, ok := part[groupKey(groupBy, g.Key)]
		if !ok {
			continue
		}
		w := &g.Windows[0]
		if err := mergeEdge(w, pg.sk); err != nil {
			return fmt.Errorf("merge the final part of window %d: %w", w.Start, err)
		}
		w.Events += pg.events
		w.Panes += pg.panes
		rest.Panes += pg.panes
	}
	return nil
}

// mergeEdge merges final, the final part of window w, into w's sketch.
func mergeEdge(w *Window, final sketch.Sketch) error {
	if _, ok := final.(*sketch.CountMin); !ok {
		if err := mergeFiner(w.Sketch, []sketch.Sketch{final}); err != nil {
			return err
		}
		settle(w.Sketch)
		return nil
	}
	sum := final.Clone()
	if err := sum.Merge(w.Sketch); err != nil {
		return err
	}
	w.Sketch = sum
	return nil
}
