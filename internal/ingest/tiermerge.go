package ingest

import (
	"fmt"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// paneMerger merges the panes of one key into the pane of a rollup tier
// that covers them: per slot of the stream's layout (Stream.SlotNames),
// the merge of their sketches in start order (sketch.MergeAll), the sum of
// their events, the highest Applied. A source pane written before an
// aggregate was added has no blob in its slot and adds nothing to it; a
// retired slot stays a zero-length blob. It is a pure function of its
// input, so a tier pane recomputed after a crash has the same bytes as the
// first time.
type paneMerger struct {
	slots []*sketch.Params // per slot; nil for a retired one
}

func newPaneMerger(spec *sketchd.Stream) (paneMerger, error) {
	names := spec.SlotNames()
	m := paneMerger{slots: make([]*sketch.Params, len(names))}
	for i, n := range names {
		if n == "" {
			continue
		}
		p, err := spec.Aggregates[n].SketchParams()
		if err != nil {
			return paneMerger{}, fmt.Errorf("aggregate %q: %w", n, err)
		}
		m.slots[i] = &p
	}
	return m, nil
}

// merge returns the tier pane of key starting at start from src, the key's
// source panes in the tier pane's range, in start order (at least one).
func (m paneMerger) merge(key string, start int64, src []sketchd.PaneRecord) (sketchd.PaneRecord, error) {
	out := sketchd.PaneRecord{Key: key, Start: start, Final: true, Sketches: make([][]byte, len(m.slots))}
	for i := range src {
		out.Events += src[i].Events
		out.Applied = max(out.Applied, src[i].Applied)
	}
	sks := make([]sketch.Sketch, 0, len(src))
	for ai, params := range m.slots {
		if params == nil {
			continue
		}
		if len(src) == 1 && len(sketchd.SlotBlob(&src[0], ai)) > 0 {
			out.Sketches[ai] = sketchd.SlotBlob(&src[0], ai)
			continue
		}
		sks = sks[:0]
		for i := range src {
			b := sketchd.SlotBlob(&src[i], ai)
			if len(b) == 0 {
				continue
			}
			sk, err := sketchd.DecodeSketch(b, params.Kind)
			if err != nil {
				return sketchd.PaneRecord{}, fmt.Errorf("pane %d of key %q, slot %d: %w", src[i].Start, key, ai, err)
			}
			sks = append(sks, sk)
		}
		if len(sks) == 0 {
			empty, err := sketch.New(*params)
			if err != nil {
				return sketchd.PaneRecord{}, err
			}
			sks = append(sks, empty)
		}
		if err := sketch.MergeAll(sks[0], sks[1:]...); err != nil {
			return sketchd.PaneRecord{}, fmt.Errorf("key %q, slot %d: %w", key, ai, err)
		}
		b, err := sks[0].AppendBinary(nil)
		if err != nil {
			return sketchd.PaneRecord{}, fmt.Errorf("key %q, slot %d: %w", key, ai, err)
		}
		out.Sketches[ai] = b
	}
	return out, nil
}
