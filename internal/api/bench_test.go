package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/window"
)

// BenchmarkQuery measures the whole query handler path (routing,
// middleware, parameter parsing, query.Querier over an in-memory
// PaneReader of real encoded panes, answer rendering, JSON) for one key over
// 60 and 1440 one-minute panes, and for a where filter that selects 1000
// keys of 2000 over 60 panes. Final panes are served from the querier's
// decoded-pane cache after the first iteration, as hot queries are.
//
//	go test -run '^$' -bench BenchmarkQuery -benchmem ./internal/api
func BenchmarkQuery(b *testing.B) {
	cases := []struct {
		name          string
		hosts, panes  int
		eventsPerPane int
		query         string
	}{
		{"one_key/panes=60", 1, 60, 20, "where=region=eu&where=host=h0"},
		{"one_key/panes=1440", 1, 1440, 20, "where=region=eu&where=host=h0"},
		{"where_1000_keys/panes=60", 1000, 60, 2, "where=region=eu"},
	}
	for _, c := range cases {
		h, from, to := benchHandler(b, c.hosts, c.panes, c.eventsPerPane)
		for _, agg := range []string{"users", "latency", "urls"} {
			target := fmt.Sprintf("/v1/streams/bench/aggregates/%s?from=%d&to=%d&%s", agg, from.Unix(), to.Unix(), c.query)
			b.Run(c.name+"/"+agg, func(b *testing.B) {
				req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, target, nil)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				b.ReportAllocs()
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
				}
			})
		}
	}
}

// benchHandler builds a stream with group_by [region, host]: hosts hosts in
// each of two regions, panes one-minute panes of eventsPerPane events per
// key, through a real window.Aggregator.
func benchHandler(b *testing.B, hosts, panes, eventsPerPane int) (http.Handler, time.Time, time.Time) {
	b.Helper()
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "bench", "events.bench"
	spec.GroupBy = []string{"region", "host"}
	spec.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "lat"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url"},
	}
	spec.Normalize()
	st := newPaneStore()
	last := t0.Add(time.Duration(panes) * time.Minute).UnixNano()
	a, err := window.NewAggregator(spec, sketchd.Checkpoint{}, last, st, window.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var pos uint64
	for p := range panes {
		var batch window.Batch
		batch.Now = last
		for _, region := range []string{"eu", "us"} {
			for hst := range hosts {
				key := sketchd.EncodeKey(region, fmt.Sprintf("h%d", hst))
				for i := range eventsPerPane {
					pos++
					user := fmt.Appendf(nil, "u%d", rng.IntN(5000))
					url := fmt.Appendf(nil, "/p/%d", rng.IntN(50))
					ev := sketchd.Event{
						Key:  key,
						Time: t0.UnixNano() + int64(p)*int64(time.Minute) + int64(i)*int64(time.Minute)/int64(eventsPerPane),
						Pos:  pos,
						// AggregateNames order: latency, urls, users.
						Values: []sketchd.Value{
							{Present: true, Num: rng.ExpFloat64() * 100},
							{Present: true, Bytes: url},
							{Present: true, Bytes: user},
						},
					}
					batch.Add(&ev)
				}
			}
		}
		batch.Position = pos
		if _, err := a.Process(context.Background(), &batch); err != nil {
			b.Fatal(err)
		}
	}
	snap, err := a.Flush(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	st.Put(snap.Panes...)
	status := sketchd.StreamStatus{ID: 1, Spec: spec, State: "running",
		Watermark: snap.Checkpoint.Watermark, CommittedWatermark: snap.Checkpoint.Watermark}
	h, err := New(Config{Streams: newFakeStreams(status), Querier: newQuerier(b, st, query.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	return h, t0, t0.Add(time.Duration(panes) * time.Minute)
}

// BenchmarkStreamGet measures the API's own overhead (routing, request id,
// metrics, logging, timeout, auth, JSON) on a route that does no query.
//
//	go test -run '^$' -bench BenchmarkStreamGet -benchmem ./internal/api
func BenchmarkStreamGet(b *testing.B) {
	spec := testSpec(b)
	h, err := New(Config{
		Streams:   newFakeStreams(sketchd.StreamStatus{ID: 1, Spec: spec, State: "running"}),
		Querier:   failingQuerier{},
		ReadToken: "r",
	})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, "/v1/streams/pageviews", nil)
	req.Header.Set("Authorization", "Bearer r")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
