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
// is final); so answer computes it once per shape, window and tailFrom,
// in two parts (splitEdge, edgeParts: its prefix as a plan of its own and
// its last pane, below), and keeps them in the window cache beside the
// final windows; the rest of the question, from tailFrom on (the open
// tail, and the windows after), is computed as before, and the edge
// window of each group is its open part merged with the parts of its
// final part (addEdge). The windows before the edge are computed and
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
	g.floor = tailFrom
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
// (when the prefix is not empty); each is kept in the window cache, the
// prefix under prefixKey, the pane as a single-pane piece of the family
// (pieces.go), and the edge window merges both into its open part
// (addEdge). So at the minute's commit, when tailFrom moves a pane, the
// new final part's prefix [start+pane, tailFrom) is one that was final
// a minute before: computed then in the background (ahead.go) the move
// merges two parts per group, the prefix and the pane that turned final,
// instead of the ~25 pieces of the whole final part. The cut never
// depends on what the cache holds or on whether the prefix was computed
// ahead, so answers do not either (TestAheadEqualsWhole).

// prefixKey names the prefix [start, end) of the final part of an edge
// window of shape in the window cache.
func prefixKey(shape string, start, end int64) winKey {
	b := append([]byte(shape), "\x00prefix"...)
	return winKey{shape: string(binary.AppendVarint(b, end)), start: start}
}

// edgeParts returns the parts of the final part of the edge window (edge,
// a plan of [start, tailFrom)), per group: its prefix, from the window
// cache or computed and cached, when not empty, and its last pane.
func (q *Querier) edgeParts(ctx context.Context, shape string, edge *plan) ([]map[string]winGroup, error) {
	gran := int64(edge.target.Spec.Granularity)
	last := edge.geom.to - gran
	pp, _ := edge.pieceParams() // edgeWindow checked it
	hits0 := q.stats.pieceHits.Load()
	pane, err := q.pieces(ctx, edge, pp, []piece{{last, gran}})
	if err != nil {
		return nil, err
	}
	parts := []map[string]winGroup{pane[piece{last, gran}]}
	hit := q.stats.pieceHits.Load() > hits0
	if last > edge.geom.from {
		pre := edge.cutTo(last)
		q.dropOldPrefixes(shape, pre)
		prefix, cached, err := q.edgePrefix(ctx, shape, pre)
		if err != nil {
			return nil, err
		}
		parts = append([]map[string]winGroup{prefix}, parts...)
		hit = hit && cached
	}
	if hit {
		q.stats.edgeHits.Add(1)
	}
	return parts, nil
}

// cutTo returns the plan of the part of edge (one window) before end.
func (p *plan) cutTo(end int64) *plan {
	c := p.cut(geometry{from: p.geom.from, to: end, step: end - p.geom.from, window: end - p.geom.from, n: 1})
	c.shape, c.merge = "", p.merge
	return c
}

// edgePrefix returns the groups of pre, the prefix of an edge window's
// final part, and whether the window cache held them; computed and cached
// when it did not.
func (q *Querier) edgePrefix(ctx context.Context, shape string, pre *plan) (map[string]winGroup, bool, error) {
	k := prefixKey(shape, pre.geom.from, pre.geom.to)
	if groups, ok := q.wins.get(k); ok {
		q.ahead.used(k)
		return groups, true, nil
	}
	groups, err := q.edgeGroups(ctx, pre)
	if err != nil {
		return nil, false, err
	}
	q.wins.put(k, groups)
	return groups, false, nil
}

// dropOldPrefixes removes from the window cache the prefixes of shape
// that the questions of the previous tail start used: ending a pane
// before pre (the prefix at the current one, which ends a pane before
// it), starting where pre does (a fixed anchor) or a pane before (a
// moving one). No question asks them again (one computed ahead ends at
// the tail start); left to the LRU, one a shape and minute crowded out
// the pieces.
func (q *Querier) dropOldPrefixes(shape string, pre *plan) {
	gran := int64(pre.target.Spec.Granularity)
	q.wins.items.remove(prefixKey(shape, pre.geom.from, pre.geom.to-gran))
	q.wins.items.remove(prefixKey(shape, pre.geom.from-gran, pre.geom.to-gran))
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

// addEdge merges the parts of the final part of the edge window into the
// first window of each group of rest (computed from tailFrom on; its
// sketches are its own). For a count-min the open part, the smaller, is
// merged into a copy of the first part: a copy of its exact counts is
// cheaper than adding each of them to the open part's, and its encoding
// is sorted, so the sketch's bytes are the same either way. Not for an
// HLL: its sparse encoding depends on the order of merges, and an
// exported window's bytes must not depend on where the edge was cut
// (TestAlterBackfillResumes in internal/ingest compares them with a
// reference stream's).
// It returns how many parts it merged.
func addEdge(rest *Result, parts []map[string]winGroup, groupBy []string) (int, error) {
	merged := 0
	finals := make([]sketch.Sketch, 0, len(parts))
	for gi := range rest.Groups {
		g := &rest.Groups[gi]
		gk := groupKey(groupBy, g.Key)
		w := &g.Windows[0]
		finals = finals[:0]
		for _, part := range parts {
			pg, ok := part[gk]
			if !ok {
				continue
			}
			finals = append(finals, pg.sk)
			w.Events += pg.events
			w.Panes += pg.panes
			rest.Panes += pg.panes
		}
		if len(finals) == 0 {
			continue
		}
		if err := mergeEdge(w, finals); err != nil {
			return merged, fmt.Errorf("merge the final part of window %d: %w", w.Start, err)
		}
		merged += len(finals)
	}
	return merged, nil
}

// mergeEdge merges finals, the parts of the final part of window w, into
// w's sketch.
func mergeEdge(w *Window, finals []sketch.Sketch) error {
	if _, ok := finals[0].(*sketch.CountMin); !ok {
		if err := mergeFiner(w.Sketch, finals); err != nil {
			return err
		}
		settle(w.Sketch)
		return nil
	}
	sum := finals[0].Clone()
	if err := sketch.MergeAll(sum, append(finals[1:len(finals):len(finals)], w.Sketch)...); err != nil {
		return err
	}
	w.Sketch = sum
	return nil
}
