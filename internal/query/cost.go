package query

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/sketchd/sketchd"
)

// cost is what a query will hold and produce, estimated before any pane
// is read or decoded:
//
//   - output windows: groups × windows per group, from the key index
//     (selectKeys checks it as keys come, and stops at the first key past
//     the limit);
//   - bytes: (the sketches the planned scans hold at once + the windows it
//     returns) × the stream's average stored sketch size, from the planned
//     scans (planScans; cached blocks cost nothing new);
//   - reads: the sketches the planned scans read and decode (keys × pane
//     slots, and keys × tier panes), which with bytes is the cost the
//     API's lanes admit by (admission.go).
//
// A scan holds every pane it decodes until its windows merge, except that
// a rollup block that stands for its panes (blocks.go) holds one merged
// sketch after its blockPanes panes. So a key's read range of s pane slots
// with b such blocks holds at most b + (s - b × blockPanes) sketches, plus
// the blockPanes of the block being built.
type cost struct {
	groups  int
	windows int   // per group
	held    int64 // sketches the planned scans hold at once
	reads   int64 // sketches they read: keys × pane slots, plus keys × tier panes
	avg     int64 // bytes per sketch
	// measured replaces held × avg when isMeasured: the stored sizes of
	// the panes the plan reads (measure.go).
	measured   int64
	isMeasured bool
}

// partBytes is the bookkeeping of one held sketch besides its own bytes
// (its part and cache entry).
const partBytes = 64

// outputWindows is groups × windows.
func (c cost) outputWindows() int64 { return int64(c.groups) * int64(c.windows) }

// bytes is the estimated memory of the query.
func (c cost) bytes() int64 {
	if c.isMeasured {
		return c.measured + c.outputWindows()*(c.avg+partBytes)
	}
	return (c.held + c.outputWindows()) * (c.avg + partBytes)
}

// checkOutput returns the max_output_windows error if the cost exceeds it.
// It only grows as keys and groups are added.
func (c cost) checkOutput(o *Options) error {
	if n := c.outputWindows(); n > int64(o.MaxOutputWindows) {
		return &LimitError{Limit: "max_output_windows", Max: int64(o.MaxOutputWindows), Got: n}
	}
	return nil
}

// checkBytes returns the max_query_bytes error if the cost exceeds it.
func (c cost) checkBytes(o *Options) error {
	if b := c.bytes(); b > o.MaxQueryBytes {
		return &LimitError{Limit: "max_query_bytes", Max: o.MaxQueryBytes, Got: b}
	}
	return nil
}

// estimateHeld sets the sketches the planned scans of p hold (see cost).
func (p *plan) estimateHeld() {
	gran := int64(p.target.Spec.Granularity)
	held, reads := int64(0), int64(0)
	horizon := p.paneHorizon()
	for _, sc := range p.scans {
		perKey := int64(0)
		for _, rg := range sc.ranges {
			end := min(rg[1], horizon)
			if end <= rg[0] {
				continue
			}
			slots := (end - rg[0]) / gran
			reads += int64(len(sc.keys)) * slots
			nb := int64(0)
			for _, bs := range p.blocks {
				if bs >= rg[0] && bs < end {
					nb++
				}
			}
			perKey += nb + slots - nb*blockPanes
		}
		held += int64(len(sc.keys)) * perKey
	}
	if len(p.blocks) > 0 {
		held += blockPanes
	}
	p.cost.held = held + p.tierHeld()
	p.cost.reads = reads + p.tierHeld()
	p.cost.windows = p.geom.n
}

// paneHorizon is the end of the newest pane the store can hold for p's
// stream: ingestion refuses an event more than MaxFuture past the
// processing time that applies it, which is before the commit that stores
// it (LastCommit, the wall clock of the instance that committed), and an
// import writes final panes only (before the watermark). A scan range
// past it reads nothing there (a seek past the key's last pane), so its
// slots cost nothing: the last window of a series anchored at a moving
// from ends up to a step past now, and its open part, from the tail start
// to that end, was counted as a day of one-minute slots for every key
// (86,460 reads for the load runner's "last 30 days by day", so every
// commit's refresh of it took the heavy lane). The watermark stands in for
// a LastCommit that is a stamp rather than a time (tests).
func (p *plan) paneHorizon() int64 {
	t := &p.target
	if t.LastCommit == 0 {
		return math.MaxInt64
	}
	g := int64(t.Spec.Granularity)
	return sketchd.PaneStart(max(t.LastCommit, t.Watermark)+int64(t.Spec.MaxFuture), g) + g
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
