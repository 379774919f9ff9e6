package query_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// BenchmarkFirstSeries is the first computation of a 24-hour series with
// hourly steps, each on a new querier (no cache), from aligned to the hour
// and from 17 minutes past it. The windows of a series start at from
// (rounded down to a pane, docs/api.md), so with an unaligned from no
// window is an hour of the hourly tier and every window is merged from
// one-minute panes: a client that sends from=now-24h pays that at each new
// minute (the load runner's phase starts, next steps of issue 14).
//
// from_on_the_hour and from_17m_past are users (hll) over 40 keys of 2
// events a pane. The sub-benchmarks named after the load runner's 24-hour
// queries (loadtest/querymix) ask the same of its four-aggregate stream at
// the live stream's density (kindsStore: 24 keys, 100 to 400 events per
// key and pane): hll_24h_series users?step=1h, cms_24h_where
// urls?where=country=DE (top=20 is read from the merged sketch),
// tdigest_24h_series latency?step=1h&group_by=device, reservoir_24h sample.
//
//	go test ./internal/query -run '^$' -bench FirstSeries -benchtime 10x -benchmem
func BenchmarkFirstSeries(b *testing.B) {
	minutes := make([]int64, 60) // a pane every minute, as a stream at load has
	for m := range minutes {
		minutes[m] = int64(m)
	}
	db, tgt, start := tierStoreMinutes(b, 40, 30, minutes)
	hour, minute := int64(time.Hour), int64(time.Minute)
	froms := []struct {
		name string
		from int64
	}{
		{"from_on_the_hour", 2 * hour},
		{"from_17m_past", 2*hour + 17*minute},
	}
	for _, c := range froms {
		b.Run(c.name, func(b *testing.B) {
			qu := query.Query{Aggregate: "users", From: start + c.from, To: start + c.from + 24*hour, Step: hour}
			benchFirstSeries(b, db, tgt, qu)
		})
	}
	kinds := sync.OnceValues(func() (*store.DB, kindsData) {
		db, tgt, start := kindsStore(b, 8, 3, 27)
		return db, kindsData{tgt, start}
	})
	for _, k := range []struct {
		name string
		q    query.Query
	}{
		{"hll_24h_series", query.Query{Aggregate: "users", Step: hour}},
		{"cms_24h_where", query.Query{Aggregate: "urls", Where: map[string][]string{"country": {"DE"}}}},
		{"tdigest_24h_series", query.Query{Aggregate: "latency", Step: hour, GroupBy: []string{"device"}}},
		{"reservoir_24h", query.Query{Aggregate: "sample"}},
	} {
		for _, c := range froms {
			b.Run(k.name+"/"+c.name, func(b *testing.B) {
				db, d := kinds()
				qu := k.q
				qu.From, qu.To = d.start+c.from, d.start+c.from+24*hour
				benchFirstSeries(b, db, d.tgt, qu)
			})
		}
	}
}

type kindsData struct {
	tgt   query.Target
	start int64
}

// benchFirstSeries times qu on a new querier each time, reporting the
// panes decoded per query and the process's CPU time per query (garbage
// collection included): on a machine shared with other work the wall
// time also counts waiting for a core.
func benchFirstSeries(b *testing.B, db *store.DB, tgt query.Target, qu query.Query) {
	var decoded int64
	var cpu time.Duration
	for b.Loop() {
		cpu0 := query.ProcessCPU()
		q := query.New(db, query.Options{})
		if _, err := q.Query(b.Context(), tgt, qu); err != nil {
			b.Fatal(err)
		}
		decoded += q.Stats().Decoded
		cpu += query.ProcessCPU() - cpu0
	}
	b.ReportMetric(float64(decoded)/float64(b.N), "decoded/op")
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
}
