package query

import (
	"fmt"

	"github.com/sketchd/sketchd"
)

// geometry is the validated shape of a result: n windows of width window,
// one every step, the last ending at to. A whole-range query is one window
// of width step = to - from.
type geometry struct {
	from, to     int64 // [from, to) output range, a whole number of steps
	step, window int64
	n            int // windows
	// floor, when hasFloor, is where the scan starts instead: the open
	// tail's first pane, the final part of the first window being merged
	// apart (edgewin.go). A flag rather than 0 for none: 0 is 1970, and a
	// range before it scanned from 1970 (its answer's from after its to).
	floor    int64
	hasFloor bool
}

// newGeometry aligns qu's range to the stream's panes (from down to a pane,
// to up to a step) and checks step and window against the granularity and
// maxWindows.
func newGeometry(spec *sketchd.Stream, qu Query, maxWindows int) (geometry, error) {
	g := int64(spec.Granularity)
	if qu.To <= qu.From {
		return geometry{}, &ParamError{"to", "must be after from"}
	}
	from := sketchd.PaneStart(qu.From, g)
	step, window := qu.Step, qu.Window
	if step < 0 {
		return geometry{}, &ParamError{"step", "must not be negative"}
	}
	if window < 0 {
		return geometry{}, &ParamError{"window", "must not be negative"}
	}
	if step == 0 {
		if window != 0 {
			return geometry{}, &ParamError{"window", "needs step"}
		}
		to := sketchd.PaneStart(qu.To-1, g) + g
		return geometry{from: from, to: to, step: to - from, window: to - from, n: 1}, nil
	}
	if step%g != 0 {
		return geometry{}, &ParamError{"step", fmt.Sprintf("must be a multiple of the stream granularity %s", spec.Granularity)}
	}
	if window == 0 {
		window = step
	}
	if window%step != 0 {
		return geometry{}, &ParamError{"window", "must be a multiple of step"}
	}
	n := (qu.To - from + step - 1) / step
	if n > int64(maxWindows) {
		return geometry{}, &LimitError{Limit: "max_windows", Max: int64(maxWindows), Got: n}
	}
	return geometry{from: from, to: from + n*step, step: step, window: window, n: int(n)}, nil
}

// scanFrom is the start of the panes the result reads: that of the first
// window, which a sliding window puts before from; or the floor.
func (g geometry) scanFrom() int64 {
	from := g.from + g.step - g.window
	if g.hasFloor {
		from = max(from, g.floor)
	}
	return from
}

// bounds returns the start and end of window i.
func (g geometry) bounds(i int) (start, end int64) {
	end = g.from + int64(i+1)*g.step
	return end - g.window, end
}

// windowsOf returns the window indexes [lo, hi) containing the pane that
// starts at start. Both ends never decrease as start grows.
func (g geometry) windowsOf(start int64) (int, int) {
	k := int(floorDiv(start-g.from, g.step))
	lo, hi := k, k+int(g.window/g.step)
	return max(lo, 0), min(hi, g.n)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
