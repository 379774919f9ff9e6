package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// BenchmarkPromRangeSumByCountry measures a Grafana panel's query through
// the real router over the real Badger store: sum by (country) of the
// distinct users (3 countries of 6 keys, 20,000 events) over the
// fixture's 2 hours at a 1-minute step (120 windows per country), as
// Grafana POSTs it, beside the same question asked of /v1. "hot" repeats
// the query between commits (the querier's result cache answers); "cold"
// uses a querier without caches each time, so every pane is read and
// merged.
//
//	go test -run '^$' -bench BenchmarkPromRangeSumByCountry -benchmem ./internal/api
func BenchmarkPromRangeSumByCountry(b *testing.B) {
	start, end := t0.Add(time.Minute), t0.Add(fixtureSpan)
	form := url.Values{
		"query": {`sum by (country) (sketchd_distinct{stream="pageviews",aggregate="users"})`},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"60"},
	}.Encode()
	v1 := "/v1/streams/pageviews/aggregates/users?" + url.Values{
		"from": {t0.Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}, "step": {"1m"}, "group_by": {"country"},
	}.Encode()
	prom := func(h http.Handler) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/api/v1/query_range", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rest := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(b.Context(), http.MethodGet, v1, nil))
		return rec
	}
	for _, c := range []struct {
		name string
		run  func(http.Handler) *httptest.ResponseRecorder
	}{{"prom", prom}, {"v1", rest}} {
		b.Run(c.name+"/hot", func(b *testing.B) {
			f := newStoreFixture(b)
			if rec := c.run(f.h); rec.Code != 200 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.run(f.h)
			}
		})
		b.Run(c.name+"/cold", func(b *testing.B) {
			f := newStoreFixture(b)
			h, err := New(Config{Streams: f.streams, Now: func() time.Time { return end },
				Querier: newQuerier(b, f.db, query.Options{CacheBytes: -1, ResultEntries: -1})})
			if err != nil {
				b.Fatal(err)
			}
			if rec := c.run(h); rec.Code != 200 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.run(h)
			}
		})
	}
}
