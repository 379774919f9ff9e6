package sketchd

import (
	"fmt"

	"github.com/sketchd/sketchd/sketch"
)

// SketchParams returns the parameters of the sketch the aggregate keeps,
// with the defaults of Normalize filled in: what the aggregator builds
// sketches with and what queries check stored sketches against.
func (a Aggregate) SketchParams() (sketch.Params, error) {
	a.Normalize()
	switch a.Sketch {
	case KindHLL:
		return sketch.Params{Kind: sketch.KindHLL, Precision: uint8(a.Precision)}, nil
	case KindCMS:
		return sketch.Params{Kind: sketch.KindCMS, Epsilon: a.Epsilon, Delta: a.Delta, TopK: a.TopK}, nil
	case KindTDigest:
		return sketch.Params{Kind: sketch.KindTDigest, Compression: a.Compression}, nil
	case KindReservoir:
		return sketch.Params{Kind: sketch.KindReservoir, Size: a.Size, Weighted: a.Weight != ""}, nil
	}
	return sketch.Params{}, fmt.Errorf("unknown sketch kind %q", a.Sketch)
}

// DecodeSketch decodes a stored sketch blob of an aggregate whose sketches
// are of kind want (its SketchParams().Kind). A blob of another kind is an
// error matching sketch.ErrIncompatible.
func DecodeSketch(blob []byte, want sketch.Kind) (sketch.Sketch, error) {
	s, err := sketch.Decode(blob)
	if err != nil {
		return nil, err
	}
	if s.Kind() != want {
		return nil, fmt.Errorf("stored sketch is %s, want %s: %w", s.Kind(), want, sketch.ErrIncompatible)
	}
	return s, nil
}
