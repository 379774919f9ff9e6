package query

import (
	"github.com/sketchd/sketchd/sketch"
)

// paneCache keeps, for final data only (which never changes), the decoded
// sketches of panes and the merged sketches of rollup blocks (blockPanes
// consecutive panes of one key), so that hot queries neither decode nor
// merge them again, and do not even read the store for cached blocks. One
// LRU list and byte budget holds both. Cached sketches are shared by
// concurrent queries and only ever read (merged from, cloned).
type paneCache struct {
	max   int64 // ≤ 0: nothing is cached
	items *lru[cacheKey, cached]
}

// cacheKey names a pane (block false) or the block starting at start; a
// pane of a rollup tier has its tier's granularity (0: the stream's own).
// The fields are in the order that pads least (56 bytes: 64 in the order
// of their meaning), since the pane cache's entries are mostly overhead
// (an entry's node and map slot hold the key: 28 bytes less an entry).
type cacheKey struct {
	gen    uint64 // the stream's generation (Querier.Forget)
	start  int64
	tier   int64
	agg    int
	key    string
	stream uint32
	block  bool
}

// cached is a decoded pane, or a block: the merge of its panes (sk nil when
// the block holds no pane), their event count and their number.
type cached struct {
	sk     sketch.Sketch
	events uint64
	panes  int
}

func newPaneCache(max int64) *paneCache {
	return &paneCache{max: max, items: newLRU[cacheKey, cached](max)}
}

func (c *paneCache) get(k cacheKey) (cached, bool) {
	if c.max <= 0 {
		return cached{}, false
	}
	return c.items.get(k)
}

// put caches v under k unless it is larger than an eighth of the budget,
// evicting the least recently used entries beyond the budget.
func (c *paneCache) put(k cacheKey, v cached) {
	if c.max <= 0 {
		return
	}
	size := int64(len(k.key)) // the entry's own bytes are the lru's
	if v.sk != nil {
		size += int64(v.sk.Size())
	}
	c.items.put(k, v, size)
}

// decode returns the decoded sketch of a pane's blob, from the cache when
// the pane is final, else from earlier when it has one (a sketch decoded
// from the same bytes before: finalreuse.go; nil: none), else decoded; a
// final pane is cached with its event count.
func (c *paneCache) decode(k cacheKey, a aggregate, blob []byte, final bool, events uint64, earlier func() sketch.Sketch) (sketch.Sketch, error) {
	if final {
		if v, ok := c.get(k); ok {
			return v.sk, nil
		}
	}
	var sk sketch.Sketch
	var err error
	if earlier != nil {
		sk = earlier()
	}
	if sk == nil {
		sk, err = a.decode(blob)
	}
	if err == nil && final {
		c.put(k, cached{sk: sk, events: events, panes: 1})
	}
	return sk, err
}

// tierPaneID names the pane of a rollup tier of granularity g.
func (p *plan) tierPaneID(key string, start, g int64) cacheKey {
	return cacheKey{stream: p.target.ID, gen: p.gen, agg: p.agg.index, key: key, start: start, tier: g}
}

func (c *paneCache) stats() lruStats { return c.items.stats() }
