package window

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
)

// BenchmarkAggregator measures events through Process, the shards and all
// four sketches (hll, cms, tdigest, reservoir) on Zipf-distributed keys and
// items, with a flush every 100 batches of 256 events.
//
//	go test ./internal/window -run '^$' -bench Aggregator -benchmem
func BenchmarkAggregator(b *testing.B) {
	spec := panetest.Spec(b)
	st := newMemStore()
	a, err := NewAggregator(spec, sketchd.Checkpoint{}, t0.UnixNano(), st, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	countries := rand.NewZipf(rng, 1.1, 1, 199)
	users := rand.NewZipf(rng, 1.1, 1, 99_999)
	const batchLen = 256
	pool := make([]sketchd.Event, 64*batchLen)
	for i := range pool {
		k := sketchd.EncodeKey(fmt.Sprint("c", countries.Uint64()), []string{"ios", "web", "android"}[rng.IntN(3)])
		pool[i] = panetest.Event(k, t0, 0, fmt.Sprint("u", users.Uint64()))
		pool[i].Values[0].Num = rng.ExpFloat64() * 100
	}
	ctx := context.Background()
	now := t0
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		var batch Batch
		batch.Now = now.UnixNano()
		for j := range batchLen {
			e := pool[(n*batchLen+j)%len(pool)]
			e.Time = now.UnixNano()
			batch.Add(&e)
		}
		if _, err := a.Process(ctx, &batch); err != nil {
			b.Fatal(err)
		}
		n++
		now = now.Add(100 * time.Millisecond)
		if n%100 == 0 {
			s, err := a.Flush(ctx)
			if err != nil {
				b.Fatal(err)
			}
			a.Committed(s)
		}
	}
	s, err := a.Flush(ctx) // wait for the shards to drain: the time counts
	if err != nil {
		b.Fatal(err)
	}
	a.Committed(s)
	b.ReportMetric(float64(n*batchLen)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batchLen), "ns/event")
}
