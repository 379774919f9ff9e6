package api

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// countingQuerier is the real querier, counting the queries that reach it.
type countingQuerier struct {
	*query.Querier
	n atomic.Int64
}

func (c *countingQuerier) Query(ctx context.Context, t query.Target, q query.Query) (*query.Result, error) {
	c.n.Add(1)
	return c.Querier.Query(ctx, t, q)
}

func (c *countingQuerier) QueryShared(ctx context.Context, t query.Target, q query.Query) (*query.Result, error) {
	c.n.Add(1)
	return c.Querier.QueryShared(ctx, t, q)
}

// TestAnswerCache: the same question asked again before the next commit
// gets the same bytes without reaching the querier; other render
// parameters (q), another range, or a new commit compute again; with the
// cache disabled every request reaches the querier.
func TestAnswerCache(t *testing.T) {
	cq := &countingQuerier{Querier: query.New(sharedStoreFor(t), query.Options{})}
	f := newFixture(t, func(c *Config) { c.Querier = cq })
	get := func(target string) []byte {
		t.Helper()
		r := f.get(t, target)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q: %s", target, r.status, r.header.Get("Content-Type"), r.body)
		}
		return r.body
	}
	q1 := aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m", "q=0.5,0.99")
	first := get(q1)
	again := get(q1)
	if !bytes.Equal(first, again) || cq.n.Load() != 1 {
		t.Fatalf("asked twice: equal %v, querier reached %d times, want once", bytes.Equal(first, again), cq.n.Load())
	}
	other := get(aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m", "q=0.9"))
	if bytes.Equal(first, other) || cq.n.Load() != 2 {
		t.Fatalf("other q: same bytes %v, querier reached %d times, want 2", bytes.Equal(first, other), cq.n.Load())
	}
	get(aggPath + "latency?" + join(rangeQuery(subFrom, subTo.Add(time.Minute)), "group_by=country", "step=5m", "q=0.5,0.99"))
	if cq.n.Load() != 3 {
		t.Fatalf("other range: querier reached %d times, want 3", cq.n.Load())
	}
	st := f.status
	st.LastCommit = st.LastCommit.Add(time.Second)
	f.streams.mu.Lock()
	f.streams.streams[st.Spec.Name] = st
	f.streams.mu.Unlock()
	after := get(q1)
	if cq.n.Load() != 4 || bytes.Equal(first, after) {
		t.Fatalf("after a commit: querier reached %d times, want 4; answer unchanged %v (its as_of must move)", cq.n.Load(), bytes.Equal(first, after))
	}

	off := &countingQuerier{Querier: query.New(sharedStoreFor(t), query.Options{})}
	f = newFixture(t, func(c *Config) { c.Querier = off; c.Limits.AnswerCacheBytes = -1 })
	get(q1)
	get(q1)
	if off.n.Load() != 2 {
		t.Errorf("cache disabled: querier reached %d times, want 2", off.n.Load())
	}
}

// sharedStoreFor returns the fixture's shared panes (built on first use).
func sharedStoreFor(t *testing.T) *paneStore {
	t.Helper()
	newFixture(t)
	return sharedStore
}
