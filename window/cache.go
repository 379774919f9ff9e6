package window

import (
	"container/list"
	"sync"

	"github.com/sketchd/sketchd/sketch"
)

// paneCache keeps decoded sketches of final panes, which never change, so
// hot queries do not decode them again. Cached sketches are shared by
// concurrent queries and only ever read (merged from, cloned).
type paneCache struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	ll    *list.List
	m     map[cacheKey]*list.Element
}

type cacheKey struct {
	stream uint32
	agg    int
	key    string
	start  int64
}

type cacheEntry struct {
	k    cacheKey
	sk   sketch.Sketch
	size int64
}

func newPaneCache(max int64) *paneCache {
	return &paneCache{max: max, ll: list.New(), m: map[cacheKey]*list.Element{}}
}

// decode returns the decoded sketch of blob, from the cache when final.
func (c *paneCache) decode(k cacheKey, a aggPlan, blob []byte, final bool) (sketch.Sketch, error) {
	if final && c.max > 0 {
		c.mu.Lock()
		if e, ok := c.m[k]; ok {
			c.ll.MoveToFront(e)
			sk := e.Value.(*cacheEntry).sk
			c.mu.Unlock()
			return sk, nil
		}
		c.mu.Unlock()
	}
	sk, err := decodeAs(a, blob)
	if err != nil || !final || c.max <= 0 {
		return sk, err
	}
	size := int64(sk.Size() + len(k.key) + 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && size <= c.max/8 {
		c.m[k] = c.ll.PushFront(&cacheEntry{k: k, sk: sk, size: size})
		c.bytes += size
		for c.bytes > c.max {
			e := c.ll.Back()
			ce := e.Value.(*cacheEntry)
			c.ll.Remove(e)
			delete(c.m, ce.k)
			c.bytes -= ce.size
		}
	}
	return sk, nil
}
