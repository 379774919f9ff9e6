package query

import (
	"container/list"
	"sync"
)

// lru is a least-recently-used map under a byte budget, safe for
// concurrent use: the pane cache (cache.go) and the window cache
// (cachewin.go). An entry larger than an eighth of the budget is not kept,
// so one entry cannot empty the cache.
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	ll    *list.List
	m     map[K]*list.Element

	evicted, refused int64 // entries evicted for room, and not kept for their size
}

// lruStats is what an lru holds and has let go.
type lruStats struct {
	bytes, entries, evicted, refused int64
}

func (c *lru[K, V]) stats() lruStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return lruStats{bytes: c.bytes, entries: int64(len(c.m)), evicted: c.evicted, refused: c.refused}
}

type lruEntry[K comparable, V any] struct {
	k    K
	v    V
	size int64
}

func newLRU[K comparable, V any](maxBytes int64) *lru[K, V] {
	return &lru[K, V]{max: maxBytes, ll: list.New(), m: map[K]*list.Element{}}
}

// get returns the value of k and marks it recently used.
func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).v, true
}

// put keeps v, of size bytes, under k unless k is kept already or v is
// larger than an eighth of the budget, evicting the least recently used
// entries beyond the budget.
func (c *lru[K, V]) put(k K, v V, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if size > c.max/8 {
		c.refused++
		return
	}
	c.m[k] = c.ll.PushFront(&lruEntry[K, V]{k: k, v: v, size: size})
	c.bytes += size
	for c.bytes > c.max {
		e := c.ll.Back()
		old := e.Value.(*lruEntry[K, V])
		c.ll.Remove(e)
		delete(c.m, old.k)
		c.bytes -= old.size
		c.evicted++
	}
}
