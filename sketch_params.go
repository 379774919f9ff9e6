package sketchd

import (
	"fmt"

	"github.com/sketchd/sketchd/sketch"
)

// SketchParams returns the parameters of the sketch the aggregate keeps,
// with the defaults of Normalize filled in: what the aggregator builds
// sketches with and what queries check stored sketches against. It fails
// for an unknown kind; other invalid parameters are Validate's to report.
func (a Aggregate) SketchParams() (sketch.Params, error) {
	k, ok := a.kind()
	if !ok {
		return sketch.Params{}, fmt.Errorf("unknown sketch kind %q", a.Sketch)
	}
	a.Normalize()
	p := sketch.Params{Kind: k.Kind, Weighted: a.Weight != ""}
	for _, f := range a.paramFields() {
		if q, ok := k.Param(f.name); ok {
			q.Set(&p, f.get())
		}
	}
	return p, nil
}

// DecodeSketch decodes a stored sketch blob of an aggregate whose sketches
// are of kind want (its SketchParams().Kind). A blob of another kind is an
// error matching sketch.ErrIncompatible.
func DecodeSketch(blob []byte, want sketch.Kind) (sketch.Sketch, error) {
	return DecodeSketchIn(blob, want, nil)
}

// DecodeSketchIn is DecodeSketch with a t-digest's values in arena (nil:
// allocated), for a sketch dropped before the arena's next Reset
// (sketch.DecodeIn).
func DecodeSketchIn(blob []byte, want sketch.Kind, arena *sketch.DecodeArena) (sketch.Sketch, error) {
	s, err := sketch.DecodeIn(blob, arena)
	if err != nil {
		return nil, err
	}
	if s.Kind() != want {
		return nil, fmt.Errorf("stored sketch is %s, want %s: %w", s.Kind(), want, sketch.ErrIncompatible)
	}
	return s, nil
}
