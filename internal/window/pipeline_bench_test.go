package window

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/internal/panetest"
)

// BenchmarkDecodeAggregate is sketchd's share of the load runner's ingest
// phase without NATS and Badger: the generator's page views (one JSON
// event per message, as ingest's intake receives them) decoded, added to
// batches of 512 messages (ingest's maxBatchMsgs), processed by the
// aggregator's shards into the four sketches of the runner's stream (hll,
// cms, tdigest, reservoir at their defaults, keyed by country and device,
// 1-minute panes), flushed every 800 batches (about a second at the target
// rate) into an in-memory store. cpu-ns/event is the process's CPU time
// (all goroutines, GC included) per event; compare it within one run:
//
//	nice -n 19 go test ./internal/window -run '^$' -bench DecodeAggregate -benchtime 400000x -count 6
func BenchmarkDecodeAggregate(b *testing.B) {
	spec := panetest.LoadShape("core", false)
	dec, err := decode.New(spec, decode.Options{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	st := newMemStore()
	a, err := NewAggregator(spec, sketchd.Checkpoint{}, now.UnixNano(), st, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	pool := loadShapeMessages(100_000, now)
	ctx := context.Background()
	const batchMsgs = 512
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	batch := &Batch{Now: now.UnixNano()}
	batch.RetainRaw = true // as ingest's intake: the pool's messages are never written
	nb := 0
	for i := range b.N {
		dec.Decode(pool[i%len(pool)], 0, batch.Now, func(ev *sketchd.Event) { batch.Add(ev) },
			func([]byte, decode.Reason, string) { b.Fatal("invalid event") })
		if batch.Len() < batchMsgs && i < b.N-1 {
			continue
		}
		if _, err := a.Process(ctx, batch); err != nil {
			b.Fatal(err)
		}
		batch.Reset()
		batch.Now = now.UnixNano()
		if nb++; nb%800 == 0 {
			flushCommit(b, a, st)
		}
	}
	flushCommit(b, a, st) // waits for the shards to drain: the time counts
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	if c := a.Stats().Counters; c.OnTime+c.Late != uint64(b.N) {
		b.Fatalf("applied %d of %d", c.OnTime+c.Late, b.N)
	}
}

func flushCommit(b *testing.B, a *Aggregator, st *memStore) {
	f, err := a.Flush(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	st.commit(f, false)
	a.Committed(f)
}

// loadShapeMessages is loadtest/publish's pool: n events generated at now
// (the runner's seed, 1), each its own message.
func loadShapeMessages(n int, now time.Time) [][]byte {
	g := gen.New(gen.Options{Seed: 1})
	pool := make([][]byte, n)
	for i := range pool {
		m, _ := g.Next(now)
		pool[i] = append([]byte(nil), m...)
	}
	return pool
}

// processCPU is the CPU time (user + system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
