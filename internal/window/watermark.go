package window

import (
	"math"

	"github.com/sketchd/sketchd"
)

// clock is a stream's event-time state. Its methods take every time as a
// value (unix ns); nothing here reads the wall clock.
type clock struct {
	maxEvent    int64 // highest event time accepted; sketchd.NoTime before any
	wm          int64 // watermark; never decreases; sketchd.NoTime before any event
	lastArrival int64 // processing time of the last accepted event, or of the start
}

// class is what an event is, relative to the watermark.
type class uint8

const (
	onTime  class = iota // its pane's end is still ahead of the watermark
	late                 // the watermark passed its pane's end, within allowed lateness: applied
	tooLate              // its pane is final: not applied
	future               // too far ahead of processing time: not applied
)

func (c class) String() string {
	return [...]string{"on_time", "late", "too_late", "future"}[c]
}

// classify returns the class of an event at time t arriving at processing
// time now, and the start of its pane. It does not change the clock.
func (p *plan) classify(c *clock, t, now int64) (class, int64) {
	start := paneStart(t, p.granule)
	if t > satAdd(now, p.maxFuture) {
		return future, start
	}
	end := satAdd(start, p.granule)
	switch {
	case p.spec.WindowFinalAt(end, c.wm):
		// Its pane is final.
		return tooLate, start
	case satAdd(end, p.retention) <= now:
		// Older than the retention: the store would drop its pane, so
		// accepting it would lose it silently. A fresh stream has no
		// watermark yet, so this is what stops an event dated 1970.
		return tooLate, start
	case end <= c.wm:
		return late, start
	}
	return onTime, start
}

// observe advances the clock past an accepted event. It reports whether the
// watermark moved.
func (p *plan) observe(c *clock, t, now int64) bool {
	c.lastArrival = now
	if t <= c.maxEvent {
		return false
	}
	c.maxEvent = t
	return c.raise(satSub(t, p.ooo))
}

// idle advances the watermark by processing time when no event has arrived
// for the idle timeout: event time is taken to have moved on at the rate of
// processing time since the last event. It reports whether the watermark
// moved.
func (p *plan) idleAdvance(c *clock, now int64) bool {
	if p.idle <= 0 || c.maxEvent == sketchd.NoTime {
		return false
	}
	quiet := now - c.lastArrival
	if quiet < p.idle {
		return false
	}
	return c.raise(satAdd(satSub(c.maxEvent, p.ooo), quiet))
}

func (c *clock) raise(w int64) bool {
	if w <= c.wm {
		return false
	}
	c.wm = w
	return true
}

// paneStart is sketchd.PaneStart, inlined for the hot path.
func paneStart(t, g int64) int64 {
	s := t - t%g
	if t%g < 0 {
		s -= g
	}
	return s
}

func satAdd(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		return satAdd(satAdd(a, math.MaxInt64), 1)
	}
	return satAdd(a, -b)
}
