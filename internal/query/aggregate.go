package query

import (
	"fmt"
	"sync/atomic"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// aggregate is the aggregate a query reads: its slot in the stream's
// layout (the position of its sketch in a stored pane), its name, its
// kind and the parameters of its sketches.
type aggregate struct {
	index  int
	name   string
	kind   sketchd.AggregateKind
	params sketch.Params
	// decoded counts the decodes (Querier.Stats); nil counts nothing.
	decoded *atomic.Int64
}

// mergeApprox says merges of the aggregate's sketches depend on their
// grouping (sketch.KindInfo.MergeApprox).
func (a aggregate) mergeApprox() bool {
	in, ok := a.params.Kind.Info()
	return !ok || in.MergeApprox
}

// decode decodes the aggregate's sketch blob of a stored pane and checks
// that it is of the aggregate's kind.
func (a aggregate) decode(blob []byte) (sketch.Sketch, error) { return a.decodeIn(blob, nil) }

// decodeIn is decode with a t-digest's values in arena (nil: allocated),
// for a sketch dropped before the arena's next Reset (sketch.DecodeIn).
func (a aggregate) decodeIn(blob []byte, arena *sketch.DecodeArena) (sketch.Sketch, error) {
	if a.decoded != nil {
		a.decoded.Add(1)
	}
	if len(blob) == 0 { // a slot the pane does not hold: no value yet
		return sketch.New(a.params)
	}
	s, err := sketchd.DecodeSketchIn(blob, a.params.Kind, arena)
	if err != nil {
		return nil, fmt.Errorf("aggregate %q: %w", a.name, err)
	}
	return s, nil
}
