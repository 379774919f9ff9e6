package query

import (
	"slices"
	"sort"
)

// The ragged ends: final panes that a window which is not final yet holds
// one by one (the last minutes of a series; the tail of a whole-range query
// after its last rollup block), and the head of a range before its first
// rollup block. A dashboard refreshing after every commit would read them
// from the store again each time. The pane cache holds their decoded
// sketches (and event counts), and, for the ragged ends only, marks the
// final slots where a key has no pane; so planScans reads a key from the
// first slot the cache cannot answer, and the store reads only the panes
// that were open at the previous commit.

// raggedEnds are the slots of a plan whose emptiness is cached: the head
// [from, headHi) before the first rollup block (all the final slots of a
// small query: see maxEmptyMarks), and the edge [edgeLo, edgeHi): edgeHi
// the first pane start that is not final (finality grows monotonically
// with the start), edgeLo at most blockPanes slots before.
type raggedEnds struct {
	from, headHi   int64
	edgeLo, edgeHi int64
}

func (p *plan) ragged() raggedEnds {
	spec := &p.target.Spec
	gran := int64(spec.Granularity)
	from := p.geom.scanFrom()
	n := int((p.geom.to - from) / gran)
	k := sort.Search(n, func(i int) bool { return !spec.PaneFinalAt(from+int64(i)*gran, p.target.Watermark) })
	r := raggedEnds{from: from, headHi: from, edgeHi: from + int64(k)*gran}
	r.edgeLo = max(from, r.edgeHi-blockPanes*gran)
	switch {
	case int64(len(p.keys))*int64(k) <= maxEmptyMarks:
		r.headHi = r.edgeHi // small: every final slot read one by one
	case len(p.blocks) > 0:
		r.headHi = min(p.blocks[0], r.edgeHi)
	}
	return r
}

// maxEmptyMarks bounds the final (key, slot) pairs of one query whose
// emptiness is cached beyond the ragged ends: a dashboard's panels (whose
// windows need not align with the last query's, as a "last 30 minutes at
// 5-minute steps" moves by a minute) are read from the cache whole, while a
// large query does not fill the cache with marks.
const maxEmptyMarks = 1 << 16

func (r raggedEnds) contains(s int64) bool {
	return (s >= r.from && s < r.headHi) || (s >= r.edgeLo && s < r.edgeHi)
}

// inBlock reports whether the pane starting at start belongs to a rollup
// block of p that stands for its panes: those are read and merged whole.
func (p *plan) inBlock(start int64) bool {
	bw := p.blockWidth()
	_, in := slices.BinarySearch(p.blocks, floorDiv(start, bw)*bw)
	return in
}

// takeCachedPanes gives key ki's final panes from cur on to their windows
// while the pane cache holds them (decoded, or marked empty), and returns
// where the store read must start: the first slot it cannot answer, that
// is not final, that belongs to a rollup block, or that a rollup tier
// serves.
func (q *Querier) takeCachedPanes(p *plan, w *windows, ki int, cur, to int64) int64 {
	if q.opts.CacheBytes <= 0 {
		return cur
	}
	spec := &p.target.Spec
	gran := int64(spec.Granularity)
	key := p.keys[ki]
	base := p.baseRanges() // what no rollup tier serves
	for ; cur < to && spec.PaneFinalAt(cur, p.target.Watermark) && !p.inBlock(cur) && inBase(base, cur, cur+gran); cur += gran {
		v, ok := q.cache.get(p.paneID(key, cur))
		if !ok {
			break
		}
		w.add(ki, cur, v)
		w.panes += v.panes
	}
	return cur
}

// markEmptyEnds caches as empty the slots of the ragged ends re in the
// read range rg where the scan met no pane of a key of keys (seen: the
// panes of the ragged ends it met).
func (q *Querier) markEmptyEnds(p *plan, re raggedEnds, seen *endPanes, keys []string, rg [2]int64) {
	if q.opts.CacheBytes <= 0 {
		return
	}
	gran := int64(p.target.Spec.Granularity)
	for s := max(re.from, rg[0]); s < min(re.edgeHi, rg[1]); s += gran {
		if !re.contains(s) || p.inBlock(s) {
			continue
		}
		for _, key := range keys {
			if !seen.has(p.keyIndex[key], s) {
				q.cache.put(p.paneID(key, s), cached{})
			}
		}
	}
}
