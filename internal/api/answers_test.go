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

// countingQuerier is the real querier, counting the queries (n) and the
// key listings (keys) that reach it.
type countingQuerier struct {
	*query.Querier
	n, keys atomic.Int64
}

func (c *countingQuerier) KeysFiltered(ctx context.Context, t query.Target, from, to int64, filters []query.Filter, limit int) ([]map[string]string, bool, error) {
	c.keys.Add(1)
	return c.Querier.KeysFiltered(ctx, t, from, to, filters, limit)
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
	cq := &countingQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{})}
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

	off := &countingQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{})}
	f = newFixture(t, func(c *Config) { c.Querier = off; c.Limits.AnswerCacheBytes = -1 })
	get(q1)
	get(q1)
	if off.n.Load() != 2 {
		t.Errorf("cache disabled: querier reached %d times, want 2", off.n.Load())
	}
}

// TestKeysAnswerCache: a key listing asked again before the next commit
// gets the same bytes without reaching the querier (at 18 listings a
// second in the load runner's mix each read the key index: 4.5% of
// sketchd's CPU); another where, limit or pretty, or a new commit, lists
// again.
func TestKeysAnswerCache(t *testing.T) {
	cq := &countingQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{})}
	f := newFixture(t, func(c *Config) { c.Querier = cq })
	get := func(target string, want int64) []byte {
		t.Helper()
		r := f.get(t, target)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q: %s", target, r.status, r.header.Get("Content-Type"), r.body)
		}
		if got := cq.keys.Load(); got != want {
			t.Fatalf("%s: querier listed keys %d times, want %d", target, got, want)
		}
		return r.body
	}
	k1 := "/v1/streams/pageviews/keys?" + join(rangeQuery(fullFrom, fullTo), "where=country=de")
	first := get(k1, 1)
	if again := get(k1, 1); !bytes.Equal(first, again) {
		t.Fatalf("asked twice: %s, then %s", first, again)
	}
	get("/v1/streams/pageviews/keys?"+join(rangeQuery(fullFrom, fullTo), "where=country=us"), 2)
	get(k1+"&limit=1", 3)
	pretty := get(k1+"&pretty=true", 4)
	if bytes.Equal(first, pretty) {
		t.Fatal("pretty=true served the compact bytes")
	}
	st := f.status
	st.LastCommit = st.LastCommit.Add(time.Second)
	f.streams.mu.Lock()
	f.streams.streams[st.Spec.Name] = st
	f.streams.mu.Unlock()
	if after := get(k1, 5); !bytes.Equal(first, after) {
		t.Fatalf("after a commit that added nothing: %s, was %s", after, first)
	}
}

// sharedStoreFor returns the fixture's shared panes (built on first use).
func sharedStoreFor(t *testing.T) *paneStore {
	t.Helper()
	newFixture(t)
	return sharedStore
}
