package query

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
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

	// selectKeys
	keys     []string       // the matching keys, in key-index order
	keyIndex map[string]int // key -> index in keys
	keyGroup []int          // key index -> index in groups
	groups   []Group        // one per group_by tuple; Windows set by mergeWindows

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
	ai, ok := slices.BinarySearch(spec.AggregateNames(), qu.Aggregate)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAggregate, qu.Aggregate)
	}
	kind := spec.Aggregates[qu.Aggregate].Sketch
	params, err := spec.Aggregates[qu.Aggregate].SketchParams()
	if err != nil {
		return nil, err
	}
	sel, err := newSelector(spec.GroupBy, qu.Where, qu.GroupBy)
	if err != nil {
		return nil, err
	}
	geom, err := newGeometry(spec, qu, q.opts.MaxWindows)
	if err != nil {
		return nil, err
	}
	return &plan{
		target: t,
		gen:    q.gens.get(t.ID),
		agg:    aggregate{index: ai, name: qu.Aggregate, kind: kind, params: params},
		sel:    sel,
		geom:   geom,
	}, nil
}

// selectKeys lists the keys of the key index with a pane in the scan range
// that the selector matches, and their groups. The limits (max_keys, and
// keys × pane slots ≤ max_panes) are checked before any pane is read.
func (q *Querier) selectKeys(ctx context.Context, p *plan) error {
	from, to := p.geom.scanFrom(), p.geom.to
	p.keyIndex = map[string]int{}
	groupIndex := map[string]int{}
	err := q.r.Keys(ctx, p.target.ID, from, to, func(key string) error {
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
		return nil
	})
	if err != nil {
		return err
	}
	if slots := int64(len(p.keys)) * ((to - from) / int64(p.target.Spec.Granularity)); slots > q.opts.MaxPanes {
		return &LimitError{Limit: "max_panes", Max: q.opts.MaxPanes, Got: slots}
	}
	if len(p.groups) == 0 && len(p.sel.groupBy) == 0 {
		p.groups = append(p.groups, Group{Key: map[string]string{}})
	}
	return nil
}

// planScans finds the blocks that may stand for their panes and, per key,
// gives the cached ones to their windows and plans store reads for the rest
// of the scan range. Keys with the same ranges to read share the reads.
func (q *Querier) planScans(ctx context.Context, p *plan, w *windows) error {
	if q.opts.CacheBytes > 0 && len(p.keys) > 0 {
		p.blocks = p.geom.blocks(&p.target.Spec, p.target.Watermark)
	}
	from, to := p.geom.scanFrom(), p.geom.to
	bw := p.blockWidth()
	byRanges := map[string]int{} // encoded ranges -> index in p.scans
	var sig []byte
	for ki, key := range p.keys {
		if ki%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var ranges [][2]int64
		cur := from
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
		if cur < to {
			ranges = append(ranges, [2]int64{cur, to})
		}
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
	return cacheKey{p.target.ID, p.gen, p.agg.index, key, start, false}
}

func (p *plan) blockID(key string, start int64) cacheKey {
	return cacheKey{p.target.ID, p.gen, p.agg.index, key, start, true}
}
