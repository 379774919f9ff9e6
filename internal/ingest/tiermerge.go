package ingest

import (
	"fmt"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// paneMerger merges the panes of one key into the pane of a rollup tier
// that covers them: per aggregate, the merge of their sketches in start
// order (sketch.MergeAll), the sum of their events, the highest Applied. It
// is a pure function of its input, so a tier pane recomputed after a crash
// has the same bytes as the first time.
type paneMerger struct {
	kinds []sketch.Kind // per aggregate, in Stream.AggregateNames order
}

func newPaneMerger(spec *sketchd.Stream) (paneMerger, error) {
	names := spec.AggregateNames()
	m := paneMerger{kinds: make([]sketch.Kind, len(names))}
	for i, n := range names {
		p, err := spec.Aggregates[n].SketchParams()
		if err != nil {
			return paneMerger{}, fmt.Errorf("aggregate %q: %w", n, err)
		}
		m.kinds[i] = p.Kind
	}
	return m, nil
}

// merge returns the tier pane of key starting at start from src, the key's
// source panes in the tier pane's range, in start order (at least one).
func (m paneMerger) merge(key string, start int64, src []sketchd.PaneRecord) (sketchd.PaneRecord, error) {
	out := sketchd.PaneRecord{Key: key, Start: start, Final: true, Sketches: make([][]byte, len(m.kinds))}
	for i := range src {
		out.Events += src[i].Events
		out.Applied = max(out.Applied, src[i].Applied)
		if len(src[i].Sketches) != len(m.kinds) {
			return sketchd.PaneRecord{}, fmt.Errorf("pane %d of key %q has %d sketches, want %d: %w",
				src[i].Start, key, len(src[i].Sketches), len(m.kinds), sketch.ErrCorrupt)
		}
	}
	if len(src) == 1 {
		copy(out.Sketches, src[0].Sketches)
		return out, nil
	}
	sks := make([]sketch.Sketch, len(src))
	for ai, kind := range m.kinds {
		for i := range src {
			sk, err := sketchd.DecodeSketch(src[i].Sketches[ai], kind)
			if err != nil {
				return sketchd.PaneRecord{}, fmt.Errorf("pane %d of key %q, aggregate %d: %w", src[i].Start, key, ai, err)
			}
			sks[i] = sk
		}
		if err := sketch.MergeAll(sks[0], sks[1:]...); err != nil {
			return sketchd.PaneRecord{}, fmt.Errorf("key %q, aggregate %d: %w", key, ai, err)
		}
		b, err := sks[0].AppendBinary(nil)
		if err != nil {
			return sketchd.PaneRecord{}, fmt.Errorf("key %q, aggregate %d: %w", key, ai, err)
		}
		out.Sketches[ai] = b
	}
	return out, nil
}
