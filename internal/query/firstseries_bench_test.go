package query_test

import (
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// BenchmarkFirstSeries is the first computation of a 24-hour series with
// hourly steps, each on a new querier (no cache), from aligned to the hour
// and from 17 minutes past it. The windows of a series start at from
// (rounded down to a pane, docs/api.md), so with an unaligned from no
// window is an hour of the hourly tier and every window is merged from
// one-minute panes: a client that sends from=now-24h pays that at each new
// minute (the load runner's phase starts, next steps of issue 14).
//
//	go test ./internal/query -run '^$' -bench FirstSeries -benchtime 20x
func BenchmarkFirstSeries(b *testing.B) {
	minutes := make([]int64, 60) // a pane every minute, as a stream at load has
	for m := range minutes {
		minutes[m] = int64(m)
	}
	db, tgt, start := tierStoreMinutes(b, 40, 30, minutes)
	hour, minute := int64(time.Hour), int64(time.Minute)
	for _, c := range []struct {
		name string
		from int64
	}{
		{"from_on_the_hour", start + 2*hour},
		{"from_17m_past", start + 2*hour + 17*minute},
	} {
		b.Run(c.name, func(b *testing.B) {
			qu := query.Query{Aggregate: "users", From: c.from, To: c.from + 24*hour, Step: hour}
			var decoded int64
			for b.Loop() {
				q := query.New(db, query.Options{})
				if _, err := q.Query(b.Context(), tgt, qu); err != nil {
					b.Fatal(err)
				}
				decoded += q.Stats().Decoded
			}
			b.ReportMetric(float64(decoded)/float64(b.N), "decoded/op")
		})
	}
}
