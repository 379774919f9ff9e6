package query

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/sketchd/sketchd/sketch"
)

// plan is one query compiled against its target, and what running it needs.
// Querier.query builds and runs it in named steps:
//
//  1. compile: the aggregate, the key selector and the window geometry;
//  2. selectKeys: the matching keys and their groups from the key index,
//     with the limits checked before any pane is read;
//  3. planScans: the rollup blocks that may stand for their panes
//     (blockStandsForPanes); per key, the cached ones go straight to their
//     windows and the rest of the range becomes store reads, shared by the
//     keys that need the same ranges;
//  4. scan: the reads, each pane to its windows or into its block;
//  5. mergeWindows: each window's panes and blocks merged once.
type plan struct {
	target Target
	gen    uint64 // the stream's cache generation (Querier.Forget)
	agg    aggregate
	sel    *selector
	geom   geometry
	shape  string // names its windows in the window cache; "" = not cached
	// family is shape without the window width: it names the pieces of
	// its windows in the window cache (pieces.go); "" = not cached.
	family string
	// merge, when set, are the parameters windows are merged at instead
	// of the aggregate's: an edge window's final part of a t-digest, kept
	// at a finer compression (edgewin.go).
	merge  *sketch.Params
	shared bool // the result may hold the window cache's sketches (QueryShared)

	// selectKeys
	keys     []string       // the matching keys, in key-index order
	keyIndex map[string]int // key -> index in keys
	keyGroup []int          // key index -> index in groups
	groups   []Group        // one per group_by tuple; Windows set by mergeWindows
	cost     cost           // estimated from the selected keys (cost.go)

	spans []Span // chooseTiers: the scan range by resolution (tiers.go)
	// ret: how far back each resolution is kept, read at compile
	// (retained.go).
	ret retained

	// planScans
	blocks []int64 // starts of the blocks that stand for their panes
	scans  []scan  // the store reads
}

// scan is one set of store reads: ranges of the scan range, for the keys
// that need the same ones.
type scan struct {
	ranges [][2]int64
	keys   []string
}

// compile resolves the aggregate, the selector and the geometry of qu.
func (q *Querier) compile(t Target, qu Query) (*plan, error) {
	spec := &t.Spec
	ai, ok := spec.Slot(qu.Aggregate)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAggregate, qu.Aggregate)
	}
	kind := spec.Aggregates[qu.Aggregate].Sketch
	params, err := spec.Aggregates[qu.Aggregate].SketchParams()
	if err != nil {
		return nil, err
	}
	sel, err := newSelector(spec.GroupBy, append(filtersOf(qu.Where), qu.Filters...), qu.GroupBy)
	if err != nil {
		return nil, err
	}
	geom, err := newGeometry(spec, qu, q.opts.MaxWindows)
	if err != nil {
		return nil, err
	}
	if err := checkSince(spec, qu.Aggregate, geom); err != nil {
		return nil, err
	}
	shape, family := "", ""
	if q.wins != nil {
		gen := q.gens.get(t.ID)
		shape = withGeneration(shapeKey(t.ID, qu, geom), gen)
		family = withGeneration(shapeKey(t.ID, qu, geometry{}), gen)
	}
	return &plan{
		shape:  shape,
		family: family,
		target: t,
		gen:    q.gens.get(t.ID),
		agg:    aggregate{index: ai, name: qu.Aggregate, kind: kind, params: params, decoded: &q.stats.decoded},
		sel:    sel,
		geom:   geom,
		ret:    q.retained(t),
	}, nil
}

// selectKeys lists the keys of the key index with a pane in the scan range
// that the selector matches, and their groups. The limits (max_keys, keys ×
// pane slots ≤ max_panes, and max_output_windows) are checked before any
// pane is read; those that only grow with the keys stop the listing at the
// first key past them.
func (q *Querier) selectKeys(ctx context.Context, p *plan) error {
	p.cost = cost{windows: p.geom.n, avg: q.sizes.avg(p.target.ID, p.agg.index)}
	p.keyIndex = map[string]int{}
	groupIndex := map[string]int{}
	err := q.spanKeys(ctx, p, func(key string) error {
		if _, dup := p.keyIndex[key]; dup {
			return nil
		}
		gk, vals, ok := p.sel.match(key)
		if !ok {
			return nil
		}
		if len(p.keys) >= q.opts.MaxKeys {
			return &LimitError{Limit: "max_keys", Max: int64(q.opts.MaxKeys), Got: int64(len(p.keys) + 1)}
		}
		gi, seen := groupIndex[gk]
		if !seen {
			gi = len(p.groups)
			groupIndex[gk] = gi
			p.groups = append(p.groups, Group{Key: vals})
		}
		p.keyIndex[key] = len(p.keys)
		p.keys = append(p.keys, key)
		p.keyGroup = append(p.keyGroup, gi)
		p.cost.groups = len(p.groups)
		return p.cost.checkOutput(&q.opts)
	})
	if err != nil {
		return err
	}
	if err := p.sel.misread(); err != nil {
		return err
	}
	if slots := int64(len(p.keys)) * p.paneSlots(); slots > q.opts.MaxPanes {
		return &LimitError{Limit: "max_panes", Max: q.opts.MaxPanes, Got: slots}
	}
	if len(p.groups) == 0 && len(p.sel.groupBy) == 0 {
		p.groups = append(p.groups, Group{Key: map[string]string{}})
	}
	p.cost.groups = len(p.groups)
	return p.cost.checkOutput(&q.opts)
}

// planScans finds the blocks that may stand for their panes and, per key,
// gives the cached ones to their windows and plans store reads for the rest
// of the scan range. Keys with the same ranges to read share the reads.
func (q *Querier) planScans(ctx context.Context, p *plan, w *windows) error {
	base := p.baseRanges()
	bw := p.blockWidth()
	p.blocks = nil
	if q.opts.CacheBytes > 0 && len(p.keys) > 0 {
		for _, bs := range p.geom.blocks(&p.target.Spec, p.target.Watermark) {
			if inBase(base, bs, bs+bw) {
				p.blocks = append(p.blocks, bs)
			}
		}
	}
	from, to := p.geom.scanFrom(), p.geom.to
	byRanges := map[string]int{} // encoded ranges -> index in p.scans
	var sig []byte
	for ki, key := range p.keys {
		if ki%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var ranges [][2]int64
		cur := q.takeCachedPanes(p, w, ki, from, to)
		for _, bs := range p.blocks {
			v, ok := q.cache.get(p.blockID(key, bs))
			if !ok {
				continue
			}
			if bs > cur {
				ranges = append(ranges, [2]int64{cur, bs})
			}
			cur = bs + bw
			w.add(ki, bs, v)
			w.panes += v.panes
		}
		if cur = q.takeCachedPanes(p, w, ki, cur, to); cur < to {
			ranges = append(ranges, [2]int64{cur, to})
		}
		ranges = clipRanges(ranges, base)
		sig = sig[:0]
		for _, r := range ranges {
			sig = binary.AppendVarint(binary.AppendVarint(sig, r[0]), r[1])
		}
		si, ok := byRanges[string(sig)]
		if !ok {
			si = len(p.scans)
			byRanges[string(sig)] = si
			p.scans = append(p.scans, scan{ranges: ranges})
		}
		p.scans[si].keys = append(p.scans[si].keys, key)
	}
	return nil
}

// blockWidth is the width of a rollup block, ns.
func (p *plan) blockWidth() int64 { return blockPanes * int64(p.target.Spec.Granularity) }

// paneID and blockID name the pane and the block of key starting at start
// in the cache.
func (p *plan) paneID(key string, start int64) cacheKey {
	return cacheKey{stream: p.target.ID, gen: p.gen, agg: p.agg.index, key: key, start: start}
}

func (p *plan) blockID(key string, start int64) cacheKey {
	return cacheKey{stream: p.target.ID, gen: p.gen, agg: p.agg.index, key: key, start: start, block: true}
}
