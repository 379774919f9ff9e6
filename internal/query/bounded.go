package query

import (
	"sync"
	"unsafe"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// boundedMap is a map safe for concurrent use that starts over (is
// cleared) when it reaches max entries or its byte budget: the small
// caches of facts that never change for their key (keycache.go,
// tierspan.go). A nil *boundedMap keeps nothing (caching disabled).
type boundedMap[K comparable, V any] struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	bytes    int64 // boundedBytes of the entries
	m        map[K]V
}

// boundedShare is the part of the pane cache's budget each bounded map
// may hold: the key lists of spans could hold maxTierSpans lists of up to
// maxTierSpanKeys keys (hundreds of MB for a stream of many keys) in no
// budget before.
const boundedShare = 8

// newBoundedMap returns a map of at most max entries and an eighth of
// cacheBytes (the pane cache's budget), nil (none) when the pane cache is
// disabled (cacheBytes ≤ 0).
func newBoundedMap[K comparable, V any](cacheBytes int64, max int) *boundedMap[K, V] {
	if cacheBytes <= 0 {
		return nil
	}
	return &boundedMap[K, V]{max: max, maxBytes: cacheBytes / boundedShare, m: map[K]V{}}
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
	size := boundedBytes(k, v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok || size > c.maxBytes {
		return // kept already, or larger than the whole budget: not kept
	}
	if len(c.m) >= c.max || c.bytes+size > c.maxBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[k] = v
	c.bytes += size
}

// boundedBytes is the heap an entry holds: its map slot, and its value's
// backing array, and the strings it holds (counted whole: the key lists
// are read from the key index for the entry).
func boundedBytes[K comparable, V any](k K, v V) int64 {
	n := (int64(unsafe.Sizeof(k)+unsafe.Sizeof(v)) + 1) * 3 / 2
	if k, ok := any(k).(tierSpanPanesKey); ok {
		n += int64(len(k.key))
	}
	switch v := any(v).(type) {
	case []string:
		n += heapsize.Class(int64(unsafe.Sizeof("")) * int64(cap(v)))
		for _, s := range v {
			n += int64(len(s))
		}
	case []int64:
		n += heapsize.Class(8 * int64(cap(v)))
	}
	return n
}
