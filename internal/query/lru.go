package query

import (
	"sync"
	"unsafe"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// lru is a least-recently-used map under a byte budget, safe for
// concurrent use: the pane cache (cache.go) and the window cache
// (cachewin.go). An entry larger than an eighth of the budget is not kept,
// so one entry cannot empty the cache.
//
// The budget holds what the heap holds: the size a caller gives for a
// value plus the entry's own overhead (heapsize.MapEntry: its list node and its
// map slot), which for the pane cache's small decoded panes was as much
// as the sketches (heapfootprint_test.go).
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int64 // the budget now: the one it was made with, or what setMax gave
	bytes int64
	// root is the list's sentinel: root.next the most recently used
	// entry, root.prev the least.
	root lruNode[K, V]
	m    map[K]*lruNode[K, V]
	over int64 // heapsize.MapEntry of this K and V

	evicted, refused int64 // entries evicted for room, and not kept for their size
}

// lruNode is an entry and its place in the list: one allocation per entry
// (container/list added an element and an interface around a second).
type lruNode[K comparable, V any] struct {
	k          K
	v          V
	size       int64 // with the overhead
	prev, next *lruNode[K, V]
}

// lruStats is what an lru holds and has let go, and its budget now.
type lruStats struct {
	bytes, entries, evicted, refused, max int64
}

func (c *lru[K, V]) stats() lruStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return lruStats{bytes: c.bytes, entries: int64(len(c.m)), evicted: c.evicted, refused: c.refused, max: c.max}
}

func newLRU[K comparable, V any](maxBytes int64) *lru[K, V] {
	c := &lru[K, V]{max: maxBytes, m: map[K]*lruNode[K, V]{}}
	c.root.next, c.root.prev = &c.root, &c.root
	var n lruNode[K, V]
	c.over = heapsize.MapEntry(unsafe.Sizeof(n), unsafe.Sizeof(n.k)+unsafe.Sizeof(&n))
	return c
}

// get returns the value of k and marks it recently used.
func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(n)
	c.pushFront(n)
	return n.v, true
}

// put keeps v, of size bytes (what it holds; put adds the entry's own),
// under k unless k is kept already or the entry is larger than an eighth
// of the budget, evicting the least recently used entries beyond the
// budget.
func (c *lru[K, V]) put(k K, v V, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	size += c.over
	if size > c.max/8 {
		c.refused++
		return
	}
	n := &lruNode[K, V]{k: k, v: v, size: size}
	c.m[k] = n
	c.pushFront(n)
	c.bytes += size
	c.evictOver()
}

// setMax makes max the budget, evicting the least recently used entries
// beyond it now.
func (c *lru[K, V]) setMax(max int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
	c.evictOver()
}

// evictOver evicts the least recently used entries while the cache holds
// more than its budget. c.mu is held.
func (c *lru[K, V]) evictOver() {
	for c.bytes > c.max && len(c.m) > 0 {
		old := c.root.prev
		c.unlink(old)
		delete(c.m, old.k)
		c.bytes -= old.size
		c.evicted++
	}
}

// remove drops k, if kept.
func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.m[k]; ok {
		c.unlink(n)
		delete(c.m, k)
		c.bytes -= n.size
	}
}

func (c *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &c.root, c.root.next
	c.root.next.prev = n
	c.root.next = n
}

func (c *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}
