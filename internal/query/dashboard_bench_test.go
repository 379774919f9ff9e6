package query

import (
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
// refresh within the minute merges again.
//
//	go test ./internal/query -run '^$' -bench DashboardCommitsInMinute -benchmem
func BenchmarkDashboardCommitsInMinute(b *testing.B) {
	l, q, refresh := newLateDashboard(b, func(agg string, to, m int64) []Query {
		return []Query{
			{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}},
			{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
			{Aggregate: agg, From: to - 60*m, To: to},
		}
	})
	refresh()
	d0 := q.Stats().Decoded
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if i%4 == 3 {
			l.ingest(b)
		} else {
			l.ingestOpen(b)
		}
		b.StartTimer()
		refresh()
	}
	b.ReportMetric(float64(q.Stats().Decoded-d0)/float64(b.N), "decoded/op")
}

// BenchmarkDashboardMinuteMove times only the refresh after the commit
// that moves the watermark a minute, the once-a-minute spike of the load
// runner: the tail start moves, so every shape's edge window has a new
// final part and the pane that turned final is read. The refreshes after
// the commits within the minute run untimed, as in BenchmarkDashboardCommitsInMinute.
//
//	go test ./internal/query -run '^$' -bench DashboardMinuteMove -benchmem
func BenchmarkDashboardMinuteMove(b *testing.B) {
	l, q, refresh := newLateDashboard(b, func(agg string, to, m int64) []Query {
		return []Query{
			{Aggregate: agg, From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}},
			{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
			{Aggregate: agg, From: to - 60*m, To: to},
			{Aggregate: agg, From: to - 60*m, To: to, GroupBy: []string{"device"}},
		}
	})
	refresh()
	var decoded, pieces int64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range 3 {
			l.ingestOpen(b)
			refresh()
		}
		l.ingest(b)
		s0 := q.Stats()
		b.StartTimer()
		refresh()
		s1 := q.Stats()
		decoded += s1.Decoded - s0.Decoded
		pieces += s1.ComputedPieces - s0.ComputedPieces
	}
	b.ReportMetric(float64(decoded)/float64(b.N), "decoded/op")
	b.ReportMetric(float64(pieces)/float64(b.N), "pieces/op")
}

// newLateDashboard is the stream of the benchmarks above (60 keys, 90
// minutes, 3 minutes of allowed lateness with late events), a querier
// with the default caches, and a refresh asking, as the API does
// (QueryShared), each of the four aggregates the questions of panels
// for the minute the stream has reached (to) in minutes of m.
func newLateDashboard(b *testing.B, panels func(agg string, to, m int64) []Query) (*live, *Querier, func()) {
	l := newLiveSpec(b, 1, 60, func(s *sketchd.Stream) { s.AllowedLateness = sketchd.Duration(3 * time.Minute) })
	l.late = 3
	for range 90 {
		l.ingest(b)
	}
	q := New(l.db, Options{})
	refresh := func() {
		to := l.now()
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			for _, qu := range panels(agg, to, int64(time.Minute)) {
				if _, err := q.QueryShared(b.Context(), l.target, qu); err != nil {
					b.Fatal(err)
				}
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
