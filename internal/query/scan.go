package query

import (
	"context"
	"fmt"
	"slices"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// blockBuild is the block being rebuilt from its panes during a scan:
// ScanPanes delivers the panes of a key consecutively, in start order.
type blockBuild struct {
	open  bool // a block is being rebuilt (its key may be "", the empty tuple)
	key   int  // index in plan.keys
	start int64
	acc   winAcc
	built map[cacheKey]bool // blocks rebuilt from panes by this query
	// arena holds the decoded values of the block's panes, dropped with
	// them when the block is merged (decodeBlockPane).
	arena sketch.DecodeArena
}

// scan runs the planned reads. A pane inside a block that stands for its
// panes is merged into that block, which is then cached and given to its
// windows; a block of a read range without any stored pane is cached as
// empty. Other panes go to their windows, their decoded sketch cached when
// final; the open tail of each key is read once per commit (tailmemo.go).
func (q *Querier) scan(ctx context.Context, p *plan, w *windows) error {
	b := &blockBuild{built: map[cacheKey]bool{}}
	re := p.ragged()
	tailFrom, memo := p.tailFrom()
	for _, sc := range p.scans {
		for _, rg := range sc.ranges {
			final := rg // the part before the open tail
			if memo {
				final[1] = min(rg[1], max(rg[0], tailFrom))
			}
			if final[0] < final[1] {
				if err := q.scanFinal(ctx, p, w, b, re, sc.keys, final); err != nil {
					return err
				}
			}
			if memo && final[1] < rg[1] {
				if err := q.scanTails(ctx, p, w, tailFrom, sc.keys, final[1], rg[1]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// scanFinal reads the range rg of keys from the store: each pane to its
// block or its windows; then caches the empty blocks and ragged-end slots
// of rg.
func (q *Querier) scanFinal(ctx context.Context, p *plan, w *windows, b *blockBuild, re raggedEnds, keys []string, rg [2]int64) error {
	var seen *endPanes // nil: markEmptyEnds caches nothing
	if q.opts.CacheBytes > 0 {
		seen = newEndPanes(re, rg, int64(p.target.Spec.Granularity), len(p.keys))
	}
	err := q.scanSlotBorrowed(ctx, p, keys, rg[0], rg[1], func(r sketchd.PaneRecord) error { // collect keeps no blob
		ki, ok := p.keyIndex[r.Key]
		if !ok {
			return fmt.Errorf("pane %d of key %q: the store returned a key the scan did not ask for", r.Start, r.Key)
		}
		seen.add(ki, r.Start)
		return q.collect(p, w, b, ki, r)
	})
	if err == nil {
		err = q.finishBlock(p, w, b)
	}
	if err != nil {
		return err
	}
	q.cacheEmptyBlocks(p, b, keys, rg)
	q.markEmptyEnds(p, re, seen, keys, rg)
	return nil
}

// collect decodes the aggregate's sketch of one stored pane, of key ki,
// and gives it to its block or to its windows. It keeps neither r nor its
// blob (scanSlotBorrowed): what it keeps is decoded.
func (q *Querier) collect(p *plan, w *windows, b *blockBuild, ki int, r sketchd.PaneRecord) error {
	ai := p.agg.index
	q.sizes.observe(p.target.ID, ai, len(sketchd.SlotBlob(&r, ai)))
	bw := p.blockWidth()
	bs := floorDiv(r.Start, bw) * bw
	if _, in := slices.BinarySearch(p.blocks, bs); in {
		if !b.open || b.key != ki || b.start != bs {
			if err := q.finishBlock(p, w, b); err != nil {
				return err
			}
			b.open, b.key, b.start = true, ki, bs
		}
		sk, err := q.decodeBlockPane(p, &r, sketchd.SlotBlob(&r, ai), &b.arena)
		if err != nil {
			return fmt.Errorf("pane %d of key %q: %w", r.Start, r.Key, err)
		}
		w.panes++
		b.acc.add(cached{sk: sk, events: r.Events, panes: 1}, 0, r.Start)
		return nil
	}
	blob := sketchd.SlotBlob(&r, ai)
	var earlier func() sketch.Sketch
	final := p.target.Spec.PaneFinalAt(r.Start, p.target.Watermark)
	if final { // the pane that turned final: finalreuse.go
		earlier = func() sketch.Sketch { return q.tails.decodedBefore(p, r.Key, r.Start, ai, blob) }
	}
	sk, err := q.cache.decode(p.paneID(r.Key, r.Start), p.agg, blob, final, r.Events, earlier)
	if err != nil {
		return fmt.Errorf("pane %d of key %q: %w", r.Start, r.Key, err)
	}
	w.panes++
	w.add(ki, r.Start, cached{sk: sk, events: r.Events, panes: 1})
	return nil
}

// finishBlock merges the block being rebuilt, caches it and gives it to its
// windows.
func (q *Querier) finishBlock(p *plan, w *windows, b *blockBuild) error {
	if !b.open {
		return nil
	}
	v := cached{events: b.acc.events, panes: b.acc.panes}
	var err error
	if v.sk, err = b.acc.result(p.agg.params); err != nil {
		return fmt.Errorf("merge block %d of key %q: %w", b.start, p.keys[b.key], err)
	}
	id := p.blockID(p.keys[b.key], b.start)
	q.cache.put(id, v)
	b.built[id] = true
	w.add(b.key, b.start, v)
	b.open, b.acc = false, winAcc{}
	b.arena.Reset() // the merge copied what it keeps: v does not use the arena
	return nil
}

// cacheEmptyBlocks caches as empty the blocks of the read range rg that no
// stored pane of keys fell in: they are final, so they stay empty.
func (q *Querier) cacheEmptyBlocks(p *plan, b *blockBuild, keys []string, rg [2]int64) {
	for _, bs := range p.blocks {
		if bs < rg[0] || bs >= rg[1] {
			continue
		}
		for _, key := range keys {
			if id := p.blockID(key, bs); !b.built[id] {
				q.cache.put(id, cached{})
			}
		}
	}
}
