package query

import (
	"sync"
	"sync/atomic"
)

// cost is what a query will hold and produce, estimated from the key index
// and the pane slots of its range before any pane is read or decoded:
//
//   - output windows: groups × windows per group;
//   - bytes: (the sketches it holds at once + the windows it returns) ×
//     the stream's average stored sketch size.
//
// A scan holds every decoded pane of the range until its windows merge,
// except that a rollup block that stands for its panes (blocks.go) holds
// one merged sketch after its blockPanes panes. So per key it holds at most
// blocks + (pane slots not in a block) + blockPanes sketches.
type cost struct {
	keys    int
	groups  int
	windows int   // per group
	perKey  int64 // sketches held per key
	avg     int64 // bytes per sketch
}

// partBytes is the bookkeeping of one held sketch besides its own bytes
// (its part and cache entry).
const partBytes = 64

// outputWindows is groups × windows.
func (c cost) outputWindows() int64 { return int64(c.groups) * int64(c.windows) }

// bytes is the estimated memory of the query.
func (c cost) bytes() int64 {
	held := int64(c.keys)*c.perKey + c.outputWindows()
	return held * (c.avg + partBytes)
}

// check returns the first limit of o the cost exceeds. It only grows as keys
// and groups are added, so selectKeys checks it as it goes and stops at the
// first key past a limit.
func (c cost) check(o *Options) error {
	if n := c.outputWindows(); n > int64(o.MaxOutputWindows) {
		return &LimitError{Limit: "max_output_windows", Max: int64(o.MaxOutputWindows), Got: n}
	}
	if b := c.bytes(); b > o.MaxQueryBytes {
		return &LimitError{Limit: "max_query_bytes", Max: o.MaxQueryBytes, Got: b}
	}
	return nil
}

// heldPerKey is the number of sketches a scan of one key holds at once
// (see cost).
func (p *plan) heldPerKey() int64 {
	gran := int64(p.target.Spec.Granularity)
	slots := (p.geom.to - p.geom.scanFrom()) / gran
	nb := int64(len(p.blocks))
	return nb + slots - nb*blockPanes + min(slots, blockPanes)
}

// sizes learns the average stored size of each aggregate's sketches, from
// the blobs the scans read (an encoded sketch is about as large as its
// decoded form), so that a query's cost can be estimated before it reads
// anything. Before the first scan of an aggregate it assumes
// defaultSketchBytes.
type sizes struct {
	m sync.Map // sizeKey -> *atomic.Int64 (moving average, bytes)
}

type sizeKey struct {
	stream uint32
	agg    int
}

// defaultSketchBytes is the assumed size of a sketch never seen: a small
// sparse HLL or count-min, a t-digest of a few hundred values.
const defaultSketchBytes = 1 << 10

func (s *sizes) avg(stream uint32, agg int) int64 {
	if v, ok := s.m.Load(sizeKey{stream, agg}); ok {
		return v.(*atomic.Int64).Load()
	}
	return defaultSketchBytes
}

// observe folds the size n of one blob into the moving average (weight
// 1/16: a few hundred panes move it).
func (s *sizes) observe(stream uint32, agg int, n int) {
	v, ok := s.m.Load(sizeKey{stream, agg})
	if !ok {
		nv := &atomic.Int64{}
		nv.Store(int64(n))
		v, _ = s.m.LoadOrStore(sizeKey{stream, agg}, nv)
	}
	a := v.(*atomic.Int64)
	for {
		old := a.Load()
		next := old + (int64(n)-old)/16
		if a.CompareAndSwap(old, next) {
			return
		}
	}
}
