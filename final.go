package sketchd

import (
	"errors"
	"math"
)

// Finality is the one rule that says when stored data can no longer change.
// A pane is final once the watermark has passed its end by the allowed
// lateness: every event that could still be applied to it would be too late.
// Finality never goes back: an alter that raises the allowed lateness sets
// FinalThrough to the end the old lateness had made final, and what ends
// there or before stays final. The aggregator finalizes (and rejects as too
// late) by it, queries mark windows final and cache decoded panes and rollup
// blocks by it, the rollup builder and emit targets build and publish final
// windows by it, all through these methods. They saturate instead of
// overflowing, so they hold for any times, including the NoTime of "no
// watermark yet".

// PaneFinalAt reports whether the pane starting at start (unix ns) is final
// under watermark wm: start + granularity + allowed lateness ≤ wm.
func (s *Stream) PaneFinalAt(start, wm int64) bool {
	return s.WindowFinalAt(satAdd(start, int64(s.Granularity)), wm)
}

// WindowFinalAt reports whether a run of panes ending at end (unix ns) — a
// query window, a rollup block, or one pane — is final under watermark wm:
// end ≤ FinalEnd(wm). Then so is every pane in it.
func (s *Stream) WindowFinalAt(end, wm int64) bool {
	return end <= s.FinalEnd(wm)
}

// FinalEnd returns the end (unix ns) up to which everything is final under
// watermark wm: wm less the allowed lateness, or FinalThrough when an alter
// that raised the lateness left it later.
func (s *Stream) FinalEnd(wm int64) int64 {
	end := wm // the end of time: everything is final
	if wm != math.MaxInt64 {
		end = satAdd(wm, -int64(s.AllowedLateness))
	}
	if s.FinalThrough != nil {
		end = max(end, s.FinalThrough.UnixNano())
	}
	return end
}

// ValidateNew validates a spec that creates a stream (POST, a configured
// stream): Validate, and final_through, which only an alter sets, absent
// (a spec carrying it would declare panes final before any event).
func (s *Stream) ValidateNew() error {
	return errors.Join(s.Validate(), s.CheckNotSetBySketchd())
}

// CheckNotSetBySketchd refuses final_through in a spec that creates a
// stream: only an alter sets it.
func (s *Stream) CheckNotSetBySketchd() error {
	if s.FinalThrough != nil {
		return &FieldError{Field: "final_through", Msg: "is set by sketchd when an alter raises allowed_lateness, not by the request"}
	}
	return nil
}

// AsConfigured returns s without what sketchd sets on a stored spec
// (final_through): the spec a configuration that created it still
// matches.
func (s Stream) AsConfigured() Stream {
	s.FinalThrough = nil
	return s
}

// satAdd is a + b, clamped to the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}
