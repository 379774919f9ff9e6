package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// BenchmarkIngestTiers measures what two rollup tiers cost ingestion: the
// same JetStream backlog (b.N events, 100 ms of event time apart) ingested
// by a stream without tiers and by one with tiers of 5m and 1h, in one run,
// grouped by 4 keys (about 150 events per key and 1-minute pane) and by
// 200 (about 3: a pane per few events, the tiers' worst case, since their
// work is per pane). It reports the ingest rate (wall time
// until every event is applied) and the process CPU per event until every
// event is applied and, with tiers, the tiers are built up to what the last
// commit made final, so the builder's work is counted:
//
//	go test ./internal/ingest -run '^$' -bench IngestTiers -benchtime 200000x -count 3
func BenchmarkIngestTiers(b *testing.B) {
	two := []sketchd.Rollup{{Granularity: sketchd.Duration(5 * time.Minute)}, {Granularity: sketchd.Duration(time.Hour)}}
	for _, keys := range []struct {
		name    string
		groupBy []string
	}{
		{"keys=4", []string{"country"}},          // ~150 events per key and pane
		{"keys=200", []string{"country", "url"}}, // ~3 events per key and pane
	} {
		for _, tiers := range [][]sketchd.Rollup{nil, two} {
			b.Run(fmt.Sprintf("%s/tiers=%d", keys.name, len(tiers)), func(b *testing.B) { benchIngestTiers(b, keys.groupBy, tiers) })
		}
	}
}

func benchIngestTiers(b *testing.B, groupBy []string, rollups []sketchd.Rollup) {
	ns := runNATS(b)
	nc := connect(b, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(b, b.TempDir())
	spec := pageviews("benchtiers", true)
	spec.GroupBy = groupBy
	spec.Rollups = rollups
	spec.Normalize()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: spec.JetStreamStream, Subjects: []string{spec.Subject}}); err != nil {
		b.Fatal(err)
	}
	publishPayloads(b, js, spec.Subject, tierBenchPayloads(b.N))
	m := newManager(b, nc, db, Options{FlushInterval: time.Second})
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	waitApplied(b, m, spec.Name, b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	waitTiersBuilt(b, m, spec)
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(0, "ns/op")
}

// tierBenchPayloads are n events 100 ms apart over 4 countries × 50 URLs.
func tierBenchPayloads(n int) [][]byte {
	rng := rand.New(rand.NewPCG(5, 6))
	out := make([][]byte, n)
	for i := range out {
		e := event{
			TS:      base.Add(time.Duration(i) * 100 * time.Millisecond).UnixMilli(),
			Country: []string{"DE", "FR", "US", "JP"}[rng.IntN(4)],
			User:    fmt.Sprintf("u%d", rng.IntN(2000)),
			URL:     fmt.Sprintf("/p/%d", rng.IntN(50)),
			MS:      rng.ExpFloat64() * 100,
		}
		out[i], _ = json.Marshal(e)
	}
	return out
}

// publishPayloads fills a JetStream stream before the timer starts.
func publishPayloads(b *testing.B, js jetstream.JetStream, subject string, payloads [][]byte) {
	b.Helper()
	for i := 0; i < len(payloads); i += 1000 {
		var futs []jetstream.PubAckFuture
		for _, p := range payloads[i:min(i+1000, len(payloads))] {
			f, err := js.PublishAsync(subject, p)
			if err != nil {
				b.Fatal(err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
}

// waitTiersBuilt waits until the stream's last commit holds its live
// watermark and each tier is built up to what that makes final (the events
// start at base).
func waitTiersBuilt(b *testing.B, m *Manager, spec sketchd.Stream) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := m.Get(context.Background(), spec.Name)
		if err != nil {
			b.Fatal(err)
		}
		done := st.CommittedWatermark == st.Watermark
		final := st.CommittedWatermark - int64(spec.AllowedLateness)
		for i, r := range spec.Rollups {
			limit := sketchd.PaneStart(final, int64(r.Granularity))
			if limit <= sketchd.PaneStart(base.UnixNano(), int64(r.Granularity)) {
				continue // nothing final yet (the first event is at base)
			}
			if i >= len(st.Rollups) || st.Rollups[i].BuiltTo < limit {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("tiers not built: %+v; watermark %d, committed %d, counters %+v", st.Rollups, st.Watermark, st.CommittedWatermark, st.Counters)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
