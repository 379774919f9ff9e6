package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// TestPromCachedAnswerNeedsNoSlot: the Prometheus API's query endpoints are
// served as the aggregate queries are. With the only query slot held by a
// slow key listing, a query_range (and an instant query) already answered
// since the last commit is served at once with the same bytes, while one
// that must be computed waits for a slot and gets 503 in Prometheus's
// envelope (code overloaded).
func TestPromCachedAnswerNeedsNoSlot(t *testing.T) {
	g := &gateQuerier{Querier: query.New(sharedStoreFor(t), query.Options{}),
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
