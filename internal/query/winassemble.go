package query

import (
	"encoding/binary"
	"slices"

	"github.com/sketchd/sketchd/sketch"
)

// shapeKey names the windows of a query in the window cache: the stream,
// the window width and the query's shape (appendShape). A window's start
// completes the name.
func shapeKey(streamID uint32, qu Query, g geometry) string {
	b := make([]byte, 0, 96)
	b = binary.AppendUvarint(b, uint64(streamID))
	b = binary.AppendVarint(b, g.window)
	return string(appendShape(b, qu))
}

// after returns the plan of the windows of p from index u on (the scan
// range and the groups cut to them; its spans, blocks and scans are left
// to chooseTiers and planScans), or nil when there are none. p itself for
// u = 0.
func (p *plan) after(u int) *plan {
	switch {
	case u >= p.geom.n:
		return nil
	case u == 0:
		return p
	}
	s := *p
	s.geom.from += int64(u) * p.geom.step
	s.geom.n -= u
	s.blocks, s.scans, s.spans = nil, nil, nil // planScans and chooseTiers set them for its range
	s.groups = slices.Clone(p.groups)
	return &s
}

// assemble is the result of p from its windows found in the window cache
// (prefix: windows 0 to len(prefix)-1) and the result of the rest (rest,
// computed by p.after(len(prefix)); nil when every window was cached). The
// cached sketches are cloned, so the result is the caller's, unless the plan
// is shared (QueryShared: the caller only reads them).
func (p *plan) assemble(prefix []map[string]winGroup, rest *Result) (*Result, error) {
	if len(prefix) == 0 {
		return rest, nil
	}
	res := &Result{
		Aggregate: p.agg.name, Kind: p.agg.kind, Params: p.agg.params,
		From: p.geom.from, To: p.geom.to, Step: p.geom.step, Window: p.geom.window,
		Watermark: p.target.Watermark, Keys: len(p.keys),
		// The cached windows were computed at some resolution; they would be
		// at this plan's now, and tiers answer as their panes do (tiers.go).
		Resolution: p.resolution(),
	}
	groups := p.groups
	if rest != nil {
		groups, res.Panes = rest.Groups, rest.Panes
	} else {
		slices.SortFunc(groups, func(a, b Group) int { return compareKeys(p.sel.groupBy, a.Key, b.Key) })
	}
	res.Groups = make([]Group, len(groups))
	for gi, g := range groups {
		gk := groupKey(p.sel.groupBy, g.Key)
		wins := make([]Window, len(prefix), p.geom.n)
		for i, cw := range prefix {
			win := &wins[i]
			win.Start, win.End = p.geom.bounds(i)
			win.Final = true // cachedPrefix takes final windows only
			var err error
			if wg, ok := cw[gk]; ok {
				win.Events, win.Panes, win.Sketch = wg.events, wg.panes, wg.sk
				if p.shared {
					win.CacheID = wg.id
				} else {
					win.Sketch = wg.sk.Clone()
				}
				res.Panes += wg.panes
			} else if win.Sketch, err = sketch.New(p.agg.params); err != nil {
				return nil, err
			}
		}
		res.Groups[gi] = Group{Key: g.Key, Windows: append(wins, g.Windows...)}
	}
	return res, nil
}
