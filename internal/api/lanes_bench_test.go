package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// BenchmarkCheapBesideHeavy measures the latency of cheap questions while
// heavy ones keep arriving, through the whole handler over the Badger
// store fixture, with 8 query slots and a 1 s queue wait (a 2-core box's
// defaults), HeavyQueryCost 600. The heavy questions are sliding t-digest
// series over 62 minutes to 2 hours (window=1h, step=1m, per country:
// 100-250 ms each alone, estimated at 1,000-2,200 cost units; the cheap
// ones, half an hour of one aggregate, at 110-210, 1-3 ms), 20 per second,
// each on its own goroutine (open loop, as vegeta): more than two cores
// can compute, so they take every slot they may. Each op is one cheap question
// asked after the previous one's answer (closed loop), and the op's
// latency goes to the percentiles; shed/op is the cheap questions refused
// (503 overloaded).
//
//   - load=computed: the querier keeps no caches and the answer cache is
//     off, so every question computes: the cheap ones (half an hour, a few
//     ms alone) need a slot.
//   - load=hits: the answer and result caches are on (the querier's pane
//     and window caches still off), the cheap question is always the same,
//     answered from the answer cache (no slot): its latency is the CPU the
//     running computations leave it. The heavy questions are all distinct.
//
// Variants: one_lane is HeavyPercent 100 (the heavy questions may take
// every slot: no lanes); lanes the default 25 (2 of the 8 slots);
// lanes_heavy=1 HeavyPercent 12 (1 of 8: not the default, see
// docs/operations.md, "Query lanes"); lanes_slots=2 MaxConcurrent 2
// (the CPUs), of which the heavy lane has 1.
//
// Interleave the variants in one run for benchstat (the machine's load
// moves between runs):
//
//	go test -c -o /tmp/api.test ./internal/api
//	for i in 1 2 3 4 5 6; do nice -n 19 /tmp/api.test -test.run '^$' \
//	  -test.bench CheapBesideHeavy -test.benchtime 300x -test.cpu 8; done | tee /tmp/lanes.txt
//	benchstat -col /variant -row /load /tmp/lanes.txt
func BenchmarkCheapBesideHeavy(b *testing.B) {
	sf := newStoreFixture(b)
	var heavy []string
	for i := range 900 { // distinct: none answered from a cache within a run
		from, to := t0.Add(time.Duration(i%30)*time.Minute), t0.Add(fixtureSpan-time.Duration(i/30)*time.Minute)
		heavy = append(heavy, aggPath+"latency?"+join(rangeQuery(from, to), "group_by=country", "step=1m", "window=1h"))
	}
	var cheap []string
	for m := range 60 {
		from := t0.Add(time.Duration(m) * time.Minute)
		cheap = append(cheap, aggPath+"users?"+rangeQuery(from, from.Add(30*time.Minute)))
	}
	for _, c := range []struct {
		name    string
		answers bool // the answer cache on, the cheap question the same
		slots   int
		percent int
	}{
		{"load=computed/variant=one_lane", false, 8, 100},
		{"load=computed/variant=lanes", false, 8, 25},
		{"load=computed/variant=lanes_heavy=1", false, 8, 12},
		{"load=computed/variant=lanes_slots=2", false, 2, 25},
		{"load=hits/variant=one_lane", true, 8, 100},
		{"load=hits/variant=lanes", true, 8, 25},
		{"load=hits/variant=lanes_heavy=1", true, 8, 12},
		{"load=hits/variant=lanes_slots=2", true, 2, 25},
	} {
		b.Run(c.name, func(b *testing.B) {
			lim := Limits{MaxConcurrent: c.slots, QueueWait: time.Second, HeavyPercent: c.percent,
				HeavyQueryCost: 600, AnswerCacheBytes: -1}
			qo := query.Options{CacheBytes: -1, ResultEntries: -1, WindowCacheBytes: -1}
			if c.answers { // the answer cache needs the result cache's keys
				lim.AnswerCacheBytes, qo.ResultEntries = 0, 0 // the defaults
			}
			h, err := New(Config{Streams: sf.streams, Limits: lim, Querier: newQuerier(b, sf.db, qo),
				Now: func() time.Time { return t0.Add(fixtureSpan) }})
			if err != nil {
				b.Fatal(err)
			}
			get := func(q string) int {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, q, nil))
				return rec.Code
			}
			// The cheap question first, alone: the querier learns the size
			// of its sketches (its estimate until then assumes 1 kB each).
			if get(cheap[0]) != http.StatusOK {
				b.Fatal("the cheap question failed")
			}
			stop := make(chan struct{})
			var hw sync.WaitGroup
			var heavyOK, heavyShed atomic.Int64
			hw.Go(func() { // heavy arrivals, 20/s
				t := time.NewTicker(50 * time.Millisecond)
				defer t.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					hw.Go(func() {
						switch get(heavy[i%len(heavy)]) {
						case http.StatusOK:
							heavyOK.Add(1)
						case http.StatusServiceUnavailable:
							heavyShed.Add(1)
						}
					})
				}
			})
			time.Sleep(time.Second) // the heavy questions take their slots
			lat := make([]time.Duration, 0, b.N)
			shed := 0
			i := 0
			start := time.Now()
			ok0, shed0 := heavyOK.Load(), heavyShed.Load()
			for b.Loop() {
				q := cheap[i%len(cheap)]
				if c.answers {
					q = cheap[0]
				}
				i++
				t := time.Now()
				code := get(q)
				lat = append(lat, time.Since(t))
				switch code {
				case http.StatusOK:
				case http.StatusServiceUnavailable:
					shed++
				default:
					b.Fatalf("cheap %s: %d", q, code)
				}
			}
			wall := time.Since(start)
			ok1, shed1 := heavyOK.Load()-ok0, heavyShed.Load()-shed0
			close(stop)
			hw.Wait()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(shed)/float64(len(lat)), "shed/op")
			b.ReportMetric(float64(ok1)/wall.Seconds(), "heavy-ok/s")
			b.ReportMetric(float64(shed1)/wall.Seconds(), "heavy-shed/s")
		})
	}
}
