package query

import "sync"

// boundedMap is a map safe for concurrent use that starts over (is
// cleared) when it reaches max entries: the small caches of facts that
// never change for their key (keycache.go, tierspan.go). A nil
// *boundedMap keeps nothing (caching disabled).
type boundedMap[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]V
}

// newBoundedMap returns a map of at most max entries, nil (none) when the
// pane cache is disabled (cacheBytes ≤ 0).
func newBoundedMap[K comparable, V any](cacheBytes int64, max int) *boundedMap[K, V] {
	if cacheBytes <= 0 {
		return nil
	}
	return &boundedMap[K, V]{max: max, m: map[K]V{}}
}

func (c *boundedMap[K, V]) get(k K) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *boundedMap[K, V]) put(k K, v V) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = v
}
