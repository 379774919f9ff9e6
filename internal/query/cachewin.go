package query

import (
	"context"
	"sync/atomic"
	"unsafe"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/heapsize"
	"github.com/sketchd/sketchd/sketch"
)

// winCache keeps the final windows of tumbling series (window = step,
// whole-range queries included) per query shape: what a window of a result
// holds depends only on the stream, the aggregate, where, group_by, its
// width and its start, and, once the window is final (WindowFinalAt at the
// committed watermark), on nothing that can change. So a dashboard that
// repeats its queries while ingesting recomputes, after each commit, only
// the windows from the first one that is not final (or not cached) on:
// work proportional to the open panes, not to the range.
//
// An entry is one window of one shape: the merged sketch, events and panes
// of each group that has any there; a group absent from it is empty in that
// window. Its sketches are shared and only read (cloned into results).
type winCache struct {
	max   int64                             // the budget at scale 1 (Querier.ScaleCaches)
	items *lru[winKey, map[string]winGroup] // encoded group key -> its window
}

type winKey struct {
	shape string // shapeKey
	start int64
}

// winGroup is one group's part of a cached window.
type winGroup struct {
	events uint64
	panes  int
	sk     sketch.Sketch
	id     uint64 // unique to this cached window of this group (Window.CacheID)
}

// winIDs numbers the cached windows of the process.
var winIDs atomic.Uint64

func newWinCache(maxBytes int64) *winCache {
	if maxBytes <= 0 {
		return nil
	}
	return &winCache{max: maxBytes, items: newLRU[winKey, map[string]winGroup](maxBytes)}
}

func (c *winCache) get(k winKey) (map[string]winGroup, bool) {
	return c.items.get(k)
}

// put caches a final window unless it is larger than an eighth of the
// budget, evicting the least recently used beyond it.
func (c *winCache) put(k winKey, groups map[string]winGroup) {
	size := int64(len(k.shape)) + heapsize.Map(len(groups), unsafe.Sizeof("")+unsafe.Sizeof(winGroup{}))
	for gk, g := range groups {
		size += int64(len(gk))
		if g.sk != nil {
			size += int64(g.sk.Size())
		}
	}
	c.items.put(k, groups, size)
}

// answer is the result of p, whose keys are selected: its leading final
// windows from the window cache, the rest computed (compute) and its
// final windows cached.
func (q *Querier) answer(ctx context.Context, p *plan) (*Result, error) {
	q.ahead.note(p)
	prefix := q.wins.cachedPrefix(p)
	q.stats.winHits.Add(int64(len(prefix)))
	q.ahead.usedWindows(p, len(prefix))
	var rest *Result
	if sub := p.after(len(prefix)); sub != nil {
		pieced, err := q.finalPrefixPieced(ctx, sub)
		if err != nil {
			return nil, err
		}
		prefix = append(prefix, pieced...)
		sub = p.after(len(prefix))
		if sub == nil {
			return p.assemble(prefix, nil)
		}
		if k, _, _, ok := q.edgeWindow(sub); ok && k > 0 {
			mid, err := q.finalBefore(ctx, sub, k)
			if err != nil {
				return nil, err
			}
			prefix = append(prefix, mid...)
			sub = p.after(len(prefix))
		}
		if rest, err = q.computeRest(ctx, p, sub); err != nil {
			return nil, err
		}
		q.wins.store(sub, rest)
	}
	return p.assemble(prefix, rest)
}

// computeRest computes sub, the windows of p after those the window cache
// held: the final part of its first window apart when it is the edge
// window (edgewin.go).
func (q *Querier) computeRest(ctx context.Context, p, sub *plan) (*Result, error) {
	edge, open, split := q.splitEdge(sub)
	if !split {
		if sub != p {
			if err := q.chooseTiers(ctx, sub); err != nil { // the spans of its range
				return nil, err
			}
		}
		return q.compute(ctx, sub)
	}
	part, err := q.edgePart(ctx, sub.shape, edge)
	if err != nil {
		return nil, err
	}
	if err := q.chooseTiers(ctx, open); err != nil {
		return nil, err
	}
	rest, err := q.compute(ctx, open)
	if err != nil {
		return nil, err
	}
	rest.From = edge.geom.from // the first window's start, not the floor
	return rest, addEdge(rest, part, sub.sel.groupBy)
}

// cachedPrefix returns the leading windows of p found in the cache: final,
// and cached for p's shape; the scan starts at the first window after them.
// A window cached further on is not used: the windows from the first miss
// on are computed together.
func (c *winCache) cachedPrefix(p *plan) []map[string]winGroup {
	if c == nil || !p.winCacheable() {
		return nil
	}
	var out []map[string]winGroup
	for i := range p.geom.n {
		start, end := p.geom.bounds(i)
		if !p.target.Spec.WindowFinalAt(end, p.target.Watermark) {
			break
		}
		groups, ok := c.get(winKey{p.shape, start})
		if !ok {
			break
		}
		out = append(out, groups)
	}
	return out
}

// store caches the leading final windows of res, a result of the plan p,
// and returns them as cached.
func (c *winCache) store(p *plan, res *Result) []map[string]winGroup {
	if c == nil || !p.winCacheable() {
		return nil
	}
	var out []map[string]winGroup
	for i := range p.geom.n {
		start, end := p.geom.bounds(i)
		if !p.target.Spec.WindowFinalAt(end, p.target.Watermark) {
			return out
		}
		groups := windowGroups(res, i, p.sel.groupBy, true)
		c.put(winKey{p.shape, start}, groups)
		out = append(out, groups)
	}
	return out
}

// windowGroups returns window i of res as the window cache keeps it: per
// group with anything there, its events, panes and sketch (a clone when
// the result is handed out too).
func windowGroups(res *Result, i int, groupBy []string, clone bool) map[string]winGroup {
	groups := map[string]winGroup{}
	for _, g := range res.Groups {
		w := &g.Windows[i]
		if w.Events == 0 && w.Panes == 0 {
			continue
		}
		sk := w.Sketch
		if clone {
			sk = sk.Clone()
		}
		warmSketch(sk)
		groups[groupKey(groupBy, g.Key)] = winGroup{events: w.Events, panes: w.Panes, sk: sk, id: winIDs.Add(1)}
	}
	return groups
}

// winCacheable reports whether the windows of p may be cached: tumbling
// (every pane in exactly one window, so a result's pane count is the sum
// of its windows'), with a shape.
func (p *plan) winCacheable() bool { return p.shape != "" && p.geom.window == p.geom.step }

// groupKey encodes a group's key map in group_by order.
func groupKey(groupBy []string, key map[string]string) string {
	vals := make([]string, len(groupBy))
	for i, d := range groupBy {
		vals[i] = key[d]
	}
	return sketchd.EncodeKey(vals...)
}

// warmSketch computes what every copy of a shared sketch would compute
// again: an HLL's estimate, which the sketch caches and Clone copies.
func warmSketch(sk sketch.Sketch) {
	if h, ok := sk.(*sketch.HLL); ok {
		h.Estimate()
	}
}

func (c *winCache) stats() lruStats {
	if c == nil {
		return lruStats{}
	}
	return c.items.stats()
}
