package query

import (
	"container/list"
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"sync"
	"unsafe"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// resultCache keeps the results of recent queries for the store state they
// were computed from (Target.LastCommit), and runs concurrent identical
// queries once. A query's result is a function of its stream, its aligned
// geometry, filters and grouping, the committed watermark and the stored
// panes; the panes change only when a commit does, and every commit moves
// LastCommit. So a dashboard refreshing the same panels, or many clients
// asking the same question, cost one computation per commit. (What moves
// a result between commits, the tier cursors and the retention horizons,
// is in the key too: appendRetained.) Cached results
// are never handed out: callers get deep copies, which they may use freely.
type resultCache struct {
	mu       sync.Mutex
	max      int   // entries
	maxBytes int64 // approximate heap of the cached sketches
	bytes    int64
	ll       *list.List
	m        map[string]*list.Element
	inflight map[string]*call
}

type resultEntry struct {
	key  string
	res  *Result
	size int64
}

// resultEntryBytes is an entry's own heap: the entry, its list element
// and its map slot.
var resultEntryBytes = heapsize.MapEntry(unsafe.Sizeof(resultEntry{}), unsafe.Sizeof("")+unsafe.Sizeof(&list.Element{})) +
	heapsize.Class(int64(unsafe.Sizeof(list.Element{})))

// resultBytes is the heap res holds: the result, its groups with their
// keys, their windows with their sketches, its resolution.
func resultBytes(res *Result) int64 {
	n := heapsize.Class(int64(unsafe.Sizeof(*res))) +
		heapsize.Class(int64(unsafe.Sizeof(Group{}))*int64(cap(res.Groups))) +
		heapsize.Class(int64(unsafe.Sizeof(Span{}))*int64(cap(res.Resolution)))
	for _, g := range res.Groups {
		n += heapsize.Map(len(g.Key), 2*unsafe.Sizeof("")) + heapsize.Class(int64(unsafe.Sizeof(Window{}))*int64(cap(g.Windows)))
		for k, v := range g.Key {
			n += int64(len(k) + len(v))
		}
		for _, w := range g.Windows {
			if w.Sketch != nil {
				n += int64(w.Sketch.Size())
			}
		}
	}
	return n
}

type call struct {
	done chan struct{}
	res  *Result
	err  error
}

func newResultCache(entries int, bytes int64) *resultCache {
	return &resultCache{max: entries, maxBytes: bytes, ll: list.New(), m: map[string]*list.Element{}, inflight: map[string]*call{}}
}

// resultKey encodes what determines a query's result besides the stored
// panes: the stream, the last commit, the committed watermark, the aligned
// geometry, the query's shape (appendShape), and the retention horizons
// and tier cursors (appendRetained), which move between commits.
func (q *Querier) resultKey(t Target, qu Query, g geometry) string {
	b := make([]byte, 0, 128)
	b = binary.AppendUvarint(b, uint64(t.ID))
	b = binary.AppendVarint(b, t.LastCommit)
	b = binary.AppendVarint(b, t.Watermark)
	b = binary.AppendVarint(b, g.from)
	b = binary.AppendVarint(b, g.to)
	b = binary.AppendVarint(b, g.step)
	b = binary.AppendVarint(b, g.window)
	b = appendShape(b, qu)
	return string(q.appendRetained(b, t, g.scanFrom()))
}

// do returns a copy of the cached result for key, or computes it with
// compute (once for concurrent callers of the same key) and caches it.
func (c *resultCache) do(ctx context.Context, key string, compute func(context.Context) (*Result, error)) (*Result, error) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		res := e.Value.(*resultEntry).res
		c.mu.Unlock()
		return res.clone(), nil
	}
	if cl, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if cl.err != nil {
			// The leader's own failure (its deadline, say) is not ours:
			// compute it ourselves.
			return compute(ctx)
		}
		return cl.res.clone(), nil
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()

	res, err := compute(ctx)
	if err == nil {
		warm(res)
	}
	cl.res, cl.err = res, err
	c.mu.Lock()
	delete(c.inflight, key)
	if err == nil {
		c.put(key, res)
	}
	c.mu.Unlock()
	close(cl.done)
	if err != nil {
		return nil, err
	}
	return res.clone(), nil
}

// put caches res under key; c.mu is held.
func (c *resultCache) put(key string, res *Result) {
	size := int64(len(key)) + resultEntryBytes + resultBytes(res)
	if size > c.maxBytes/4 {
		return
	}
	c.m[key] = c.ll.PushFront(&resultEntry{key: key, res: res, size: size})
	c.bytes += size
	for c.ll.Len() > c.max || c.bytes > c.maxBytes {
		e := c.ll.Back()
		re := e.Value.(*resultEntry)
		c.ll.Remove(e)
		delete(c.m, re.key)
		c.bytes -= re.size
	}
}

// warm computes what the copies of a cached result would each compute
// again: an HLL's estimate (about 0.5 ms dense at p = 14), which the sketch
// caches and Clone copies. It runs before the result is shared.
func warm(r *Result) {
	for _, g := range r.Groups {
		for _, w := range g.Windows {
			warmSketch(w.Sketch)
		}
	}
}

// clone returns a deep copy of r: its sketches are the caller's.
func (r *Result) clone() *Result {
	c := *r
	c.Groups = make([]Group, len(r.Groups))
	for gi, g := range r.Groups {
		wins := make([]Window, len(g.Windows))
		for i, w := range g.Windows {
			w.Sketch = w.Sketch.Clone()
			wins[i] = w
		}
		c.Groups[gi] = Group{Key: maps.Clone(g.Key), Windows: wins}
	}
	return &c
}

// appendShape appends what determines a query's windows besides the
// stream, the geometry and the store: the aggregate, the where filter
// (dimensions and values sorted, values deduplicated), group_by and the
// other filters (appendFilters).
func appendShape(b []byte, qu Query) []byte {
	str := func(s string) { b = append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	str(qu.Aggregate)
	dims := make([]string, 0, len(qu.Where))
	for d := range qu.Where {
		dims = append(dims, d)
	}
	slices.Sort(dims)
	b = binary.AppendUvarint(b, uint64(len(dims)))
	for _, d := range dims {
		str(d)
		vals := slices.Clone(qu.Where[d])
		slices.Sort(vals)
		vals = slices.Compact(vals)
		b = binary.AppendUvarint(b, uint64(len(vals)))
		for _, v := range vals {
			str(v)
		}
	}
	if qu.GroupBy == nil {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(qu.GroupBy))+1)
		for _, d := range qu.GroupBy {
			str(d)
		}
	}
	return appendFilters(b, qu.Filters)
}
