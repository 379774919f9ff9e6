package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
	"github.com/sketchd/sketchd/sketch"
)

// BenchmarkQueryStore measures query.Querier over a real Badger store
// (on b.TempDir()) holding panes built by a real Aggregator: one key over 60
// and 1440 one-minute panes (an hour and a day), and a where filter that
// selects 1000 keys over 60 panes, for each sketch kind. "hot" queries find
// their final panes and blocks in the cache (a dashboard refreshing after a
// commit); "cold" ones decode every pane; "answer" ones repeat a query
// between two commits and get a copy of the cached result (with the HLL
// estimate already computed, as the API renders it). Besides ns/op it reports the p50 and p99
// latency of the iterations in milliseconds.
//
//	go test ./internal/query -run '^$' -bench QueryStore -benchmem
func BenchmarkQueryStore(b *testing.B) {
	cases := []struct {
		name          string
		keys, panes   int
		eventsPerPane int
		where         map[string][]string
	}{
		{"one_key/panes=60", 1, 60, 200, map[string][]string{"region": {"eu"}, "host": {"h0"}}},
		{"one_key/panes=1440", 1, 1440, 200, map[string][]string{"region": {"eu"}, "host": {"h0"}}},
		{"where_1000_keys/panes=60", 1000, 60, 10, map[string][]string{"region": {"eu"}}},
	}
	for _, c := range cases {
		db, target, from, to := benchStore(b, c.keys, c.panes, c.eventsPerPane)
		for _, cache := range []struct {
			name       string
			bytes      int64
			lastCommit int64
		}{{"hot", 0, 0}, {"cold", -1, 0}, {"answer", 0, 1}} {
			q := query.New(db, query.Options{CacheBytes: cache.bytes})
			target := target
			target.LastCommit = cache.lastCommit
			for _, agg := range []string{"users", "latency", "urls", "sample"} {
				b.Run(c.name+"/"+agg+"/"+cache.name, func(b *testing.B) {
					qu := query.Query{Aggregate: agg, From: from, To: to, Where: c.where}
					if _, err := q.Query(b.Context(), target, qu); err != nil {
						b.Fatal(err)
					}
					var lat []time.Duration
					b.ReportAllocs()
					for b.Loop() {
						start := time.Now()
						res, err := q.Query(b.Context(), target, qu)
						if err != nil {
							b.Fatal(err)
						}
						if h, ok := res.Groups[0].Windows[0].Sketch.(*sketch.HLL); ok {
							h.Estimate()
						}
						lat = append(lat, time.Since(start))
						if res.Panes == 0 {
							b.Fatal("no panes")
						}
					}
					slices.Sort(lat)
					ms := func(p float64) float64 {
						return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6
					}
					b.ReportMetric(ms(0.5), "p50-ms")
					b.ReportMetric(ms(0.99), "p99-ms")
				})
			}
		}
	}
}

// benchStore commits panes panes of keys keys (half in region eu, half in
// us) with eventsPerPane events each: Zipf users and urls, exponential
// latencies.
func benchStore(b *testing.B, keys, panes, eventsPerPane int) (*store.DB, query.Target, int64, int64) {
	b.Helper()
	ctx := context.Background()
	opts := store.DefaultOptions()
	db, err := store.Open(b.TempDir(), nil, nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "bench", "events.bench"
	spec.GroupBy = []string{"region", "host"}
	spec.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "lat"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url"},
		"sample":  {Sketch: sketchd.KindReservoir, Field: "url"},
	}
	spec.Normalize()
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	// Recent data: the store keeps partitions within retention.
	t0 := time.Now().Truncate(24 * time.Hour).Add(-48 * time.Hour).UnixNano()
	minute := int64(time.Minute)
	last := t0 + int64(panes)*minute
	a, err := window.NewAggregator(spec, sketchd.Checkpoint{}, last, loader{db, info.ID}, window.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	users := rand.NewZipf(rng, 1.1, 1, 99_999)
	urls := rand.NewZipf(rng, 1.1, 1, 4_999)
	half := max(1, keys/2)
	var pos uint64
	for p := range panes {
		var batch window.Batch
		batch.Now = last
		for k := range keys {
			region := "eu"
			if keys > 1 && k >= half {
				region = "us"
			}
			key := sketchd.EncodeKey(region, fmt.Sprintf("h%d", k%half))
			for i := range eventsPerPane {
				pos++
				ev := sketchd.Event{
					Key:  key,
					Time: t0 + int64(p)*minute + int64(i)*minute/int64(eventsPerPane),
					Pos:  pos,
					// AggregateNames order: latency, sample, urls, users.
					Values: []sketchd.Value{
						{Present: true, Num: rng.ExpFloat64() * 100},
						{Present: true, Bytes: fmt.Appendf(nil, "%q", fmt.Sprintf("/p/%d", urls.Uint64()))},
						{Present: true, Bytes: fmt.Appendf(nil, "/p/%d", urls.Uint64())},
						{Present: true, Bytes: fmt.Appendf(nil, "u%d", users.Uint64())},
					},
				}
				batch.Add(&ev)
			}
		}
		batch.Position = pos
		if _, err := a.Process(ctx, &batch); err != nil {
			b.Fatal(err)
		}
		if p%60 == 59 || p == panes-1 {
			snap, err := a.Flush(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := db.Commit(ctx, info.ID, sketchd.Flush{Panes: snap.Panes, Checkpoint: snap.Checkpoint}); err != nil {
				b.Fatal(err)
			}
			a.Committed(snap)
		}
	}
	// Every pane is final: the watermark is past the last one by far.
	target := query.Target{ID: info.ID, Spec: spec, Watermark: last + int64(24*time.Hour)}
	return db, target, t0, last
}

// loader reads one stream's panes back for the aggregator.
type loader struct {
	db *store.DB
	id uint32
}

func (l loader) Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	return l.db.Pane(ctx, l.id, key, start)
}
