package query

import (
	"context"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// BenchmarkDashboardWhileIngesting is a dashboard refreshing while the
// stream ingests: each iteration commits one more minute of events (60
// keys, real Aggregator and Badger; not timed) and runs the dashboard's
// panels over the last hour, each aggregate as a one-minute series grouped
// by country and a 15-minute series of all keys. It reports ns/op (the
// panels only) and decoded/op, the sketches decoded per refresh: with the
// window cache ("windows"), only the panes open at the previous commit;
// without it ("panes": the pane and block caches only, as before), every
// pane in a window that is not cached whole. The answer cache misses at
// every commit in both. "shared" is "windows" asked as the API asks
// (QueryShared: cached final windows handed out, no result cache).
//
//	go test ./internal/query -run '^$' -bench DashboardWhileIngesting -benchmem
func BenchmarkDashboardWhileIngesting(b *testing.B) {
	for _, c := range []struct {
		name   string
		opts   Options
		shared bool
	}{
		{"windows", Options{}, false},
		{"panes", Options{WindowCacheBytes: -1}, false},
		{"shared", Options{}, true}, // as the API asks: QueryShared
	} {
		b.Run(c.name, func(b *testing.B) {
			l := newLive(b, 1, 60)
			for range 90 {
				l.ingest(b)
			}
			q := New(l.db, c.opts)
			m := int64(time.Minute)
			refresh := func() {
				to := l.now()
				for _, agg := range []string{"users", "urls", "latency", "sample"} {
					for _, qu := range []Query{
						{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}},
						{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
					} {
						ask := q.Query
						if c.shared {
							ask = q.QueryShared
						}
						if _, err := ask(b.Context(), l.target, qu); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			refresh() // a dashboard already open
			d0 := q.Stats().Decoded
			timeAfterCommits(b, l, refresh)
			b.ReportMetric(float64(q.Stats().Decoded-d0)/float64(b.N), "decoded/op")
		})
	}
}

// BenchmarkDashboardCommitsInMinute is the dashboard above on a stream
// that commits every second, as sketchd does while ingesting: three
// commits of late events into the open panes (the watermark unmoved), then
// one that moves it a minute, with a refresh after each. It asks the
// panels as the API does (QueryShared), plus a whole-range question of the
// last hour per aggregate: the edge window (edgewin.go) is the one a
// refresh within the minute merges again. The first warmMoves minutes
// run untimed. cpu-ms/op is the process's CPU time per refresh;
// ahead-cpu-ms/minute that of the minute's ahead jobs (ahead.go), run
// untimed before the commit that moves the watermark.
//
//	go test ./internal/query -run '^$' -bench DashboardCommitsInMinute -benchmem
func BenchmarkDashboardCommitsInMinute(b *testing.B) { benchCommitsInMinute(b, density{}) }

// BenchmarkDashboardCommitsInMinuteDense is BenchmarkDashboardCommitsInMinute
// on a denser stream (dense below).
//
//	go test ./internal/query -run '^$' -bench DashboardCommitsInMinuteDense -benchmem
func BenchmarkDashboardCommitsInMinuteDense(b *testing.B) { benchCommitsInMinute(b, dense) }

func benchCommitsInMinute(b *testing.B, d density) {
	l, q, refresh := newLateDashboard(b, d, func(agg string, to, m int64) []Query {
		return []Query{
			{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}},
			{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
			{Aggregate: agg, From: to - 60*m, To: to},
		}
	})
	refresh(b.Context())
	for range warmMoves { // as BenchmarkDashboardMinuteMove
		for range 3 {
			l.ingestOpen(b)
			refresh(b.Context())
		}
		q.ahead.runQueued(b.Context())
		l.ingest(b)
		refresh(b.Context())
	}
	d0 := q.Stats().Decoded
	var cpu, aheadCPU time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if i%4 == 3 {
			cpu0 := processCPU()
			q.ahead.runQueued(b.Context()) // the minute's ahead jobs, before its move
			aheadCPU += processCPU() - cpu0
			l.ingest(b)
		} else {
			l.ingestOpen(b)
		}
		b.StartTimer()
		cpu0 := processCPU()
		refresh(b.Context())
		cpu += processCPU() - cpu0
	}
	b.ReportMetric(float64(q.Stats().Decoded-d0)/float64(b.N), "decoded/op")
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(aheadCPU)/1e6/float64(max(b.N/4, 1)), "ahead-cpu-ms/minute")
}

// BenchmarkDashboardMinuteMove times only the refresh after the commit
// that moves the watermark a minute, the once-a-minute spike of the load
// runner: the tail start moves, so every shape's edge window has a new
// final part and the pane that turned final is read. The refreshes after
// the commits within the minute run untimed, as in BenchmarkDashboardCommitsInMinute,
// and so do the first warmMoves moves. Besides the mean it reports the
// median and the slowest move (p50-ms, max-ms: the minute from or the
// tail start crossed a rollup block, twice in 15), the pieces computed
// and the window cache's evictions and refusals (entries over an eighth
// of its budget) per move, the process's CPU time
// per move (cpu-ms/op: steadier than ns/op on a machine shared with
// other work, which ns/op waits for), and the mean wall and CPU time of
// the same dashboard's (untimed) refreshes within the minute
// (within-ms, within-cpu-ms: what a move is compared with). Each
// minute's ahead jobs (ahead.go: the next minute's edge prefixes and
// final windows, queued by the move's refresh) run to completion,
// untimed, after the minute's first refresh, as the worker runs them
// AheadDelay after the move; their CPU time is ahead-cpu-ms/minute, the
// work moved off the move.
// The timed refresh carries the pprof label phase=move (the refreshes
// within the minute phase=within, the ahead jobs phase=ahead), so a
// profile can be narrowed to it:
//
//	go test ./internal/query -run '^$' -bench DashboardMinuteMove -benchmem
//	go test ./internal/query -run '^$' -bench DashboardMinuteMove -benchtime 20x -cpuprofile cpu.out
//	go tool pprof -tagfocus phase=move -top cpu.out
func BenchmarkDashboardMinuteMove(b *testing.B) { benchMinuteMove(b, density{}) }

// BenchmarkDashboardMinuteMoveDense is BenchmarkDashboardMinuteMove on a
// denser stream (dense below).
//
//	go test ./internal/query -run '^$' -bench DashboardMinuteMoveDense -benchmem
func BenchmarkDashboardMinuteMoveDense(b *testing.B) { benchMinuteMove(b, dense) }

func benchMinuteMove(b *testing.B, d density) {
	l, q, refresh := newLateDashboard(b, d, func(agg string, to, m int64) []Query {
		return []Query{
			{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}},
			{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
			{Aggregate: agg, From: to - 60*m, To: to},
			{Aggregate: agg, From: to - 60*m, To: to, GroupBy: []string{"device"}},
		}
	})
	refresh(b.Context())
	var within, withinCPU time.Duration // the refreshes within the minute
	var aheadCPU time.Duration          // the ahead jobs of each minute
	// Three commits within the minute, the minute's ahead jobs run to
	// completion after the first (as the worker runs them AheadDelay after
	// the move queued them), then the commit that moves it.
	commits := func() {
		for i := range 3 {
			l.ingestOpen(b)
			start, cpu0 := time.Now(), processCPU()
			pprof.Do(b.Context(), pprof.Labels("phase", "within"), refresh)
			within += time.Since(start)
			withinCPU += processCPU() - cpu0
			if i == 0 {
				cpu0 := processCPU()
				pprof.Do(b.Context(), pprof.Labels("phase", "ahead"), func(ctx context.Context) { q.ahead.runQueued(ctx) })
				aheadCPU += processCPU() - cpu0
			}
		}
		l.ingest(b)
	}
	for range warmMoves {
		commits()
		refresh(b.Context())
	}
	within, withinCPU, aheadCPU = 0, 0, 0
	w0 := q.wins.stats()
	var decoded, pieces int64
	var took []time.Duration
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		commits()
		s0 := q.Stats()
		b.StartTimer()
		start, cpu0 := time.Now(), processCPU()
		pprof.Do(b.Context(), pprof.Labels("phase", "move"), refresh)
		took = append(took, time.Since(start))
		cpu += processCPU() - cpu0
		s1 := q.Stats()
		decoded += s1.Decoded - s0.Decoded
		pieces += s1.ComputedPieces - s0.ComputedPieces
	}
	b.ReportMetric(float64(decoded)/float64(b.N), "decoded/op")
	b.ReportMetric(float64(pieces)/float64(b.N), "pieces/op")
	w1 := q.wins.stats()
	b.ReportMetric(float64(w1.evicted-w0.evicted)/float64(b.N), "evicted/op")
	b.ReportMetric(float64(w1.refused-w0.refused)/float64(b.N), "refused/op")
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(aheadCPU)/1e6/float64(b.N), "ahead-cpu-ms/minute")
	b.ReportMetric(float64(within)/1e6/float64(3*b.N), "within-ms")
	b.ReportMetric(float64(withinCPU)/1e6/float64(3*b.N), "within-cpu-ms")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
}

// warmMoves is how many minute moves a dashboard makes before
// BenchmarkDashboardMinuteMove times them: an open dashboard's steady
// state. The first two after its first load compute what the first load
// left to them (a series asked the first time has no edge window split
// off, so its first minute move cuts every piece of it: at the dense
// density 726 and 898 ms against 100 to 340 for the moves after) and
// were a third of the mean of 20 timed moves.
const warmMoves = 2

// density is how many events a key gets a minute and how many distinct
// users they come from (live.events, live.users; zero: the sparse
// stream of the tests, up to 20 from 300).
type density struct{ events, users int }

// dense is a stream whose hour-long sketches are in their large forms,
// as the load runner's are (2,000 events/s): up to 200 events a key a
// minute from 50,000 users, so that a group of all keys holds a dense
// HLL and a count-min table past its exact map within a rollup block, and
// each key's within the hour; the sparse stream's merges cost about their
// contents (sparse HLL keys, exact count-min items), these about their
// number.
var dense = density{events: 200, users: 50_000}

// newLateDashboard is the stream of the benchmarks above (60 keys, 90
// minutes, 3 minutes of allowed lateness with late events, density d), a querier
// with the default caches, and a refresh asking, as the API does
// (QueryShared), each of the four aggregates the questions of panels
// for the minute the stream has reached (to) in minutes of m, each
// question under the pprof labels agg and panel (its index in panels).
func newLateDashboard(b *testing.B, d density, panels func(agg string, to, m int64) []Query) (*live, *Querier, func(context.Context)) {
	l := newLiveSpec(b, 1, 60, func(s *sketchd.Stream) { s.AllowedLateness = sketchd.Duration(3 * time.Minute) })
	l.late = 3
	l.events, l.users = d.events, d.users
	for range 90 {
		l.ingest(b)
	}
	q := New(l.db, Options{})
	q.ahead.manual = true // the benchmarks run each minute's jobs untimed
	refresh := func(ctx context.Context) {
		to := l.now()
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			for i, qu := range panels(agg, to, int64(time.Minute)) {
				pprof.Do(ctx, pprof.Labels("agg", agg, "panel", strconv.Itoa(i)), func(ctx context.Context) {
					if _, err := q.QueryShared(ctx, l.target, qu); err != nil {
						b.Fatal(err)
					}
				})
			}
		}
	}
	return l, q, refresh
}

// timeAfterCommits runs b.N rounds of an untimed commit of the next
// minute's events to l and a timed ask (a dashboard's refresh after it),
// reporting allocations.
func timeAfterCommits(b *testing.B, l *live, ask func()) {
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		l.ingest(b)
		b.StartTimer()
		ask()
	}
}
