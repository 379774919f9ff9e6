package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// TestPromCachedAnswerNeedsNoSlot: the Prometheus API's query endpoints are
// served as the aggregate queries are. With the only query slot held by a
// slow key listing, a query_range (and an instant query) already answered
// since the last commit is served at once with the same bytes, while one
// that must be computed waits for a slot and gets 503 in Prometheus's
// envelope (code overloaded).
func TestPromCachedAnswerNeedsNoSlot(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 1), keys: true}
	f := newFixture(t, func(c *Config) {
		c.Querier = g
		c.Limits.MaxConcurrent = 1
		c.Limits.QueueWait = 200 * time.Millisecond
	})
	unix := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	rangeQ := "/api/v1/query_range?" + url.Values{"query": {`sum by (country) (sketchd_distinct{stream="pageviews",aggregate="users"})`},
		"start": {unix(subFrom)}, "end": {unix(subTo)}, "step": {"300"}}.Encode()
	instantQ := "/api/v1/query?" + url.Values{"query": {`sum(sketchd_count{stream="pageviews"})`}, "time": {unix(subTo)}}.Encode()
	first := map[string][]byte{}
	for _, q := range []string{rangeQ, instantQ} {
		r := f.get(t, q)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
		first[q] = r.body
	}
	queries := g.nQuery.Load()

	done := make(chan struct{})
	go func() {
		defer close(done)
		f.get(t, "/v1/streams/pageviews/keys?"+rangeQuery(subFrom, subTo))
	}()
	<-g.entered // the key listing holds the only slot

	for _, q := range []string{rangeQ, instantQ} {
		r := f.get(t, q)
		if r.status != http.StatusOK || !bytes.Equal(r.body, first[q]) {
			t.Errorf("cached %s while the slot is held: %d (want 200 and the first bytes) %s", q, r.status, r.body)
		}
	}
	if n := g.nQuery.Load(); n != queries {
		t.Errorf("cached answers reached the querier %d more times", n-queries)
	}
	uncached := "/api/v1/query_range?" + url.Values{"query": {`sum(sketchd_distinct{stream="pageviews",aggregate="users"})`},
		"start": {unix(subFrom)}, "end": {unix(subTo)}, "step": {"600"}}.Encode()
	r := f.get(t, uncached)
	var env struct {
		Status, ErrorType, Code string
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("uncached question while the slot is held: %d %s: %v", r.status, r.body, err)
	}
	if r.status != http.StatusServiceUnavailable || env.Status != "error" || env.ErrorType != "unavailable" || env.Code != "overloaded" {
		t.Errorf("uncached question while the slot is held: %d %s, want 503 unavailable/overloaded", r.status, r.body)
	}
	close(g.gate)
	<-done
	if r := f.get(t, uncached); r.status != http.StatusOK {
		t.Errorf("after the slot freed: %d %s", r.status, r.body)
	}
}

// listingStreams counts the stream listings: every Prometheus API query
// makes one before it looks at the answer cache.
type listingStreams struct {
	*fakeStreams
	lists atomic.Int64
}

func (c *listingStreams) List(ctx context.Context) ([]sketchd.StreamStatus, error) {
	c.lists.Add(1)
	return c.fakeStreams.List(ctx)
}

// TestPromAnswerFlight: identical query_range requests that arrive while
// the answer is being computed wait for that computation and get its
// bytes: the querier is reached once, through QueryShared (the handler
// only reads the result).
func TestPromAnswerFlight(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64), queries: true}
	var ls *listingStreams
	f := newFixture(t, func(c *Config) {
		ls = &listingStreams{fakeStreams: c.Streams.(*fakeStreams)}
		c.Streams = ls
		c.Querier = g
		c.Limits.MaxConcurrent = 2
		c.Limits.QueueWait = 10 * time.Second
	})
	q := "/api/v1/query_range?" + url.Values{"query": {`sketchd_quantile{stream="pageviews",aggregate="latency",quantile="0.9"}`},
		"start": {strconv.FormatInt(subFrom.Unix(), 10)}, "end": {strconv.FormatInt(subTo.Unix(), 10)}, "step": {"300"}}.Encode()
	const n = 8
	bodies := make([][]byte, n)
	status := make([]int, n)
	var wg sync.WaitGroup
	get := func(i int) {
		r := f.get(t, q)
		bodies[i], status[i] = r.body, r.status
	}
	wg.Go(func() { get(0) })
	<-g.entered // the first request computes, held at the gate
	for i := 1; i < n; i++ {
		wg.Go(func() { get(i) })
	}
	for ls.lists.Load() < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // to the flight (see TestAnswerFlight)
	close(g.gate)
	wg.Wait()
	for i := range n {
		if status[i] != http.StatusOK || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("request %d: %d, same bytes as the first %v: %s", i, status[i], bytes.Equal(bodies[i], bodies[0]), bodies[i])
		}
	}
	if !bytes.Contains(bodies[0], []byte(`"values":[[`)) {
		t.Fatalf("no samples in the answer: %s", bodies[0])
	}
	if got, shared := g.nQuery.Load(), g.nShared.Load(); got != 1 || shared != 1 {
		t.Errorf("querier reached %d times (%d through QueryShared) by %d requests for one answer, want 1 (1)", got, shared, n)
	}
}
