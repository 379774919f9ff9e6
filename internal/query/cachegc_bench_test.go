package query

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// BenchmarkPaneCacheGC measures what a full pane cache costs each GC
// cycle: the time of a whole collection (runtime.GC: mark and sweep, on
// every thread) while a 56 MiB pane cache (the default budget at the
// default memory limit) holds decoded panes of 10 events each (a key's
// pane of the runner's backfill), per kind of the runner's stream; it
// reports the entries held. A layout of the cache is compared by its GC
// time per entry (docs/operations.md, "What the query load allocates"):
//
//	go test ./internal/query -run '^$' -bench PaneCacheGC -count 3
func BenchmarkPaneCacheGC(b *testing.B) {
	for _, k := range []sketch.Kind{sketch.KindHLL, sketch.KindCMS, sketch.KindTDigest, sketch.KindReservoir} {
		b.Run(k.String(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(21, 1))
			blobs := footprintBlobs(b, rng, k, 10, 8)
			c := newPaneCache(56 << 20)
			for i := 0; c.stats().evicted == 0; i++ {
				sk, err := sketch.Decode(blobs[i%len(blobs)])
				if err != nil {
					b.Fatal(err)
				}
				c.put(cacheKey{stream: 1, key: fmt.Sprintf("country=%02d\x00device=%d", i%97, i%7), start: int64(i) * 60e9}, cached{sk: sk, events: 10, panes: 1})
			}
			runtime.GC()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			b.ReportMetric(float64(c.stats().entries), "entries")
			runtime.KeepAlive(c)
		})
	}
}
