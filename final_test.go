package sketchd

import (
	"math"
	"testing"
	"time"
)

// TestFinality pins the finality rule at its edges: final exactly when the
// watermark reaches end + allowed lateness, and no overflow at the ends of
// the int64 range (a pane near math.MaxInt64 is never final; nothing is
// final before the first watermark, math.MinInt64).
func TestFinality(t *testing.T) {
	s := DefaultStream() // 1m panes, 1m allowed lateness
	m := int64(time.Minute)
	tests := []struct {
		name      string
		start, wm int64
		want      bool
	}{
		{"watermark before end", 0, m - 1, false},
		{"watermark at end", 0, m, false},
		{"within lateness", 0, 2*m - 1, false},
		{"at end + lateness", 0, 2 * m, true},
		{"past end + lateness", 0, 10 * m, true},
		{"before 1970", -3 * m, -m, true},
		{"no watermark yet", -3 * m, math.MinInt64, false},
		{"pane at the end of time", math.MaxInt64 - m/2, math.MaxInt64 - 1, false},
		{"end of time, final watermark", math.MaxInt64 - m/2, math.MaxInt64, true},
		{"start of time", math.MinInt64, math.MinInt64, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.PaneFinalAt(tt.start, tt.wm); got != tt.want {
				t.Errorf("PaneFinalAt(%d, %d) = %v, want %v", tt.start, tt.wm, got, tt.want)
			}
			if tt.start <= math.MaxInt64-m {
				// A pane is the smallest window: the two rules agree.
				if got := s.WindowFinalAt(tt.start+m, tt.wm); got != tt.want {
					t.Errorf("WindowFinalAt(%d, %d) = %v, want %v", tt.start+m, tt.wm, got, tt.want)
				}
			}
		})
	}

	// Zero allowed lateness: final as soon as the watermark reaches the end.
	s.AllowedLateness = 0
	if !s.WindowFinalAt(m, m) || s.WindowFinalAt(m, m-1) {
		t.Error("with zero lateness a window is final exactly from its end")
	}

	// FinalThrough (an alter raised the lateness): what ends by it stays
	// final whatever the lateness and watermark; after it the lateness
	// rules.
	s.AllowedLateness = Duration(time.Hour)
	through := time.Unix(0, 10*m)
	s.FinalThrough = &through
	for _, c := range []struct {
		end, wm int64
		want    bool
	}{
		{10 * m, 10 * m, true}, {10 * m, math.MinInt64, true}, {11 * m, 11 * m, false},
		{11 * m, 70 * m, false}, {11 * m, 71 * m, true}, {100 * m, math.MaxInt64, true},
	} {
		if got := s.WindowFinalAt(c.end, c.wm); got != c.want {
			t.Errorf("final_through 10m, lateness 1h: WindowFinalAt(%d, %d) = %v, want %v", c.end, c.wm, got, c.want)
		}
	}
}
