package window

import (
	"fmt"
	"slices"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// plan is a stream spec compiled for the hot path.
type plan struct {
	spec      sketchd.Stream
	granule   int64 // pane width, ns
	ooo       int64 // max out-of-orderness, ns
	idle      int64 // idle timeout, ns (0 = never)
	maxFuture int64 // ns
	retention int64 // ns: panes that ended longer ago than this are dropped
	names     []string
	aggs      []aggregate
	dims      []string
	dimIndex  map[string]int
	aggIndex  map[string]int
	slots     []int // pane slot -> index in aggs, -1 for a retired slot (Stream.SlotNames)
	tagSeed   uint64
}

// aggregate is one of the stream's aggregates as panes keep it: its name
// and the parameters of its sketches.
type aggregate struct {
	name   string
	params sketch.Params
}

func compile(spec sketchd.Stream) (*plan, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	p := &plan{
		spec:      spec,
		granule:   int64(spec.Granularity),
		ooo:       int64(spec.MaxOutOfOrderness),
		idle:      int64(spec.IdleTimeout),
		maxFuture: int64(spec.MaxFuture),
		retention: int64(spec.Retention),
		names:     spec.AggregateNames(),
		dims:      slices.Clone(spec.GroupBy),
		dimIndex:  map[string]int{},
		aggIndex:  map[string]int{},
	}
	for i, d := range p.dims {
		p.dimIndex[d] = i
	}
	for i, n := range p.names {
		a := spec.Aggregates[n]
		sp, err := a.SketchParams()
		if err != nil {
			return nil, fmt.Errorf("aggregate %q: %w", n, err)
		}
		p.aggs = append(p.aggs, aggregate{name: n, params: sp})
		p.aggIndex[n] = i
	}
	for _, n := range spec.SlotNames() {
		i, ok := p.aggIndex[n]
		if !ok {
			i = -1
		}
		p.slots = append(p.slots, i)
	}
	// Reservoir tags derive from event positions mixed with a per-stream
	// seed, so replays draw the same sample and streams do not correlate.
	p.tagSeed = mix64(uint64(len(spec.Name)) ^ sketch.Hash([]byte(spec.Name))) // as ReservoirTag
	return p, nil
}

// ReservoirTag is the reservoir tag of the event at source position pos
// (not 0) of the named stream: what the stream's panes drew it with, so a
// backfill draws the same sample.
func ReservoirTag(stream string, pos uint64) uint64 {
	return mix64(pos ^ mix64(uint64(len(stream))^sketch.Hash([]byte(stream))))
}

// mix64 is the splitmix64 finalizer: a bijective 64-bit mixer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
