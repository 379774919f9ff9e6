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
	f, g, q, busy := refreshHeld(t)
	h := f.h.(*Handler)
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
	busy.Wait()
}

// refreshHeld serves the fixture's store through a gateQuerier, asks the
// question q once, commits, and leaves the server busy with another
// question held at the gate (busy ends when it is answered) and q's
// background refresh held there too: q's second request was answered
// stale, and the refresh reached the querier.
func refreshHeld(t *testing.T, opts ...fixtureOpt) (f *fixture, g *gateQuerier, q string, busy *sync.WaitGroup) {
	t.Helper()
	g = &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{CacheBytes: -1, WindowCacheBytes: -1}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	f = newFixture(t, append([]fixtureOpt{func(cf *Config) { cf.Querier = g }}, opts...)...)
	q = aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m")
	other := aggPath + "users?" + join(rangeQuery(subFrom, subTo), "step=5m")
	if r := f.get(t, q); r.status != http.StatusOK {
		t.Fatalf("first answer: %d %s", r.status, r.body)
	}
	commitFixture(f)
	g.queries = true
	busy = &sync.WaitGroup{}
	busy.Go(func() { f.get(t, other) }) // computes, held at the gate: the server is busy
	<-g.entered
	if r := f.get(t, q); r.header.Get(hdrStale) != "true" {
		t.Fatalf("while busy: %d stale=%q, want the stale answer", r.status, r.header.Get(hdrStale))
	}
	<-g.entered // the refresh reached the querier
	return f, g, q, busy
}
