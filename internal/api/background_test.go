package api

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// TestCloseEndsRefreshes: Handler.Close cancels a background refresh that
// is still computing and waits for it, and after it a request that finds
// an older answer while the server is busy computes the newest itself
// instead of starting a refresh nobody would wait for. Before, refreshes
// were nobody's goroutines and could still be reading when the store
// closed.
func TestCloseEndsRefreshes(t *testing.T) {
	g := &gateQuerier{Querier: query.New(sharedStoreFor(t), query.Options{CacheBytes: -1, WindowCacheBytes: -1}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	f := newFixture(t, func(cf *Config) { cf.Querier = g })
	h := f.h.(*Handler)
	q := aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m")
	other := aggPath + "users?" + join(rangeQuery(subFrom, subTo), "step=5m")
	if r := f.get(t, q); r.status != http.StatusOK {
		t.Fatalf("first answer: %d %s", r.status, r.body)
	}
	commitFixture(f)
	g.queries = true
	var wg sync.WaitGroup
	wg.Go(func() { f.get(t, other) }) // computes, held at the gate: the server is busy
	<-g.entered
	if r := f.get(t, q); r.header.Get(hdrStale) != "true" {
		t.Fatalf("while busy: %d stale=%q, want the stale answer", r.status, r.header.Get(hdrStale))
	}
	<-g.entered // the refresh is computing, held at the gate
	closed := make(chan struct{})
	go func() { h.Close(); close(closed) }()
	select {
	case <-closed: // the refresh's context ended: the gate let it go
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the refresh held at the gate")
	}

	commitFixture(f) // the answer is old again; the other question still holds the server busy
	asked := make(chan response, 1)
	go func() { asked <- f.get(t, q) }()
	<-g.entered // computed by the request itself: no refresh starts after Close
	close(g.gate)
	if r := <-asked; r.status != http.StatusOK || r.header.Get(hdrStale) == "true" {
		t.Fatalf("after Close: %d stale=%q, want the newest answer computed by the request", r.status, r.header.Get(hdrStale))
	}
	wg.Wait()
}
