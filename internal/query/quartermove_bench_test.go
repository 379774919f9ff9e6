package query

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSeriesQuarterMove measures what a series anchored at a moving
// from costs per minute, by where the minute falls in the quarter hour:
// "the last 6 hours by hour" of two aggregates (HLL and t-digest) over 60
// keys, asked once after each minute's commit, as a dashboard refreshes
// it. Its hourly windows do not start on the hour, so they are cut into
// pieces (pieces.go): the 15-minute rollup blocks inside each window form
// one stretch, which is a new piece when from's pane reaches a quarter
// hour (the stretch grows by a block) and the minute after (it loses its
// first block); the other minutes add single panes at the windows' ends.
// Each b.N is one minute: an untimed commit, then the timed questions. It
// reports the stored sketches decoded, the pieces computed and the wall
// time per move, for the moves onto a quarter (decoded-q0/move,
// pieces-q0/move, ms-q0/move), the moves a minute after (q1) and the
// others (rest). The load runner's 24-hour series at
// an hour's step over 180 keys is the same at 4 times the windows and 3
// times the keys (docs/operations.md, "Quarter-hour recomputes"):
//
// cache=2MiB keeps the pane cache smaller than the blocks the series
// reads, as the runner's is. There, on the 2-vCPU VM (seeded, so the
// counts repeat), one stretch per width (0799c86) decoded 23,081 sketches
// on a move onto a quarter, 17,455 the minute after and 320 on the
// others; units of doubling widths (pieces.go) 12,402, 6,724 and 263.
// What is left a minute after a quarter is the panes of the block from
// has entered: single-pane pieces that no cached piece holds alone
// (pieces-q1/move 94 against 2 on the other moves).
//
// With blocks and their doublings composed from their narrower pieces
// (pieces.go, composedOf) the same run (2026-12-07, same VM) decoded
// 7,374, 6,261 and 191; by quarter of the hour (decoded-q0hNN/move: one
// move each at -benchtime 60x), before and after: :30 14,560 -> 188, :45
// 5,912 -> 182, :15 186 -> 186 (the hour before computed its blocks), :00
// 28,949 -> 28,919 (the hour: the windows start on the hour, so they are
// not cut into pieces and are merged from every key's blocks; the
// runner's stream has an hourly tier for them).
//
//	go test ./internal/query -run '^$' -bench SeriesQuarterMove -benchtime 60x
func BenchmarkSeriesQuarterMove(b *testing.B) {
	b.Run("cache=default", func(b *testing.B) { benchQuarterMove(b, 0) })
	// The runner's day of blocks (96 × 180 keys × 4 aggregates) is many
	// times its 56 MiB pane cache; this fixture's six hours fit the
	// default one, so a cache of 2 MiB stands for that.
	b.Run("cache=2MiB", func(b *testing.B) { benchQuarterMove(b, 2<<20) })
}

func benchQuarterMove(b *testing.B, cacheBytes int64) {
	const keys, hours = 60, 6
	l := newLiveSpec(b, 20261207, keys, nil)
	for range (hours+1)*60 + 7 { // the series' range and more, ending past a quarter
		l.ingest(b)
	}
	q := New(l.db, Options{CacheBytes: cacheBytes})
	b.Cleanup(q.Close)
	q.ahead.manual = true // no ahead jobs: each move does its own work
	h := int64(time.Hour)
	ask := func() {
		to := l.now()
		for _, agg := range []string{"users", "latency"} {
			if _, err := q.Query(b.Context(), l.target, Query{Aggregate: agg, From: to - hours*h, To: to, Step: h}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range 16 { // a quarter of moves, so every cache holds what the steady state does
		l.ingest(b)
		ask()
	}
	type tally struct {
		moves, decoded, pieces int64
		took                   time.Duration
	}
	var by [3]tally      // q0, q1, rest
	var quarter [4]tally // q0 by its quarter of the hour: :00, :15, :30, :45
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		l.ingest(b)
		slot := min(l.minute%15, 2) // the pane from starts at, in its quarter
		s0 := q.Stats()
		b.StartTimer()
		start := time.Now()
		ask()
		t := &by[slot]
		t.took += time.Since(start)
		s1 := q.Stats()
		t.decoded += s1.Decoded - s0.Decoded
		t.pieces += s1.ComputedPieces - s0.ComputedPieces
		t.moves++
		if slot == 0 {
			qt := &quarter[l.minute%60/15]
			qt.decoded += s1.Decoded - s0.Decoded
			qt.moves++
		}
	}
	for i, name := range []string{"q0", "q1", "rest"} {
		if t := by[i]; t.moves > 0 {
			b.ReportMetric(float64(t.decoded)/float64(t.moves), "decoded-"+name+"/move")
			b.ReportMetric(float64(t.pieces)/float64(t.moves), "pieces-"+name+"/move")
			b.ReportMetric(float64(t.took)/1e6/float64(t.moves), "ms-"+name+"/move")
		}
	}
	for i, t := range quarter {
		if t.moves > 0 {
			b.ReportMetric(float64(t.decoded)/float64(t.moves), fmt.Sprintf("decoded-q0h%02d/move", 15*i))
		}
	}
}
