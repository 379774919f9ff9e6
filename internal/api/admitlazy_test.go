package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// gateQuerier is the real querier whose key listings (keys=true) or
// queries (queries=true) wait for gate, announcing themselves on entered;
// it counts the queries that reach it (nShared: those through QueryShared).
type gateQuerier struct {
	*query.Querier
	gate           chan struct{}
	entered        chan struct{}
	keys, queries  bool
	nQuery, nMulti atomic.Int64
	nShared        atomic.Int64
}

func (g *gateQuerier) wait(ctx context.Context, on bool) error {
	if !on {
		return nil
	}
	g.entered <- struct{}{}
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateQuerier) Query(ctx context.Context, t query.Target, q query.Query) (*query.Result, error) {
	g.nQuery.Add(1)
	if err := g.wait(ctx, g.queries); err != nil {
		return nil, err
	}
	return g.Querier.Query(ctx, t, q)
}

func (g *gateQuerier) QueryMulti(ctx context.Context, t query.Target, q query.Query, names []string) ([]*query.Result, error) {
	g.nMulti.Add(1)
	if err := g.wait(ctx, g.queries); err != nil {
		return nil, err
	}
	return g.Querier.QueryMulti(ctx, t, q, names)
}

func (g *gateQuerier) QueryShared(ctx context.Context, t query.Target, q query.Query) (*query.Result, error) {
	g.nQuery.Add(1)
	g.nShared.Add(1)
	if err := g.wait(ctx, g.queries); err != nil {
		return nil, err
	}
	return g.Querier.QueryShared(ctx, t, q)
}

func (g *gateQuerier) QueryMultiShared(ctx context.Context, t query.Target, q query.Query, names []string) ([]*query.Result, error) {
	g.nMulti.Add(1)
	if err := g.wait(ctx, g.queries); err != nil {
		return nil, err
	}
	return g.Querier.QueryMultiShared(ctx, t, q, names)
}

func (g *gateQuerier) KeysFiltered(ctx context.Context, t query.Target, from, to int64, fs []query.Filter, limit int) ([]map[string]string, bool, error) {
	if err := g.wait(ctx, g.keys); err != nil {
		return nil, false, err
	}
	return g.Querier.KeysFiltered(ctx, t, from, to, fs, limit)
}

// TestCachedAnswerNeedsNoSlot: with the only query slot held by a slow
// key listing, an answer already in the answer cache (single and
// multi-aggregate) is served at once, while a question that must be
// computed still waits for a slot and gets 503 overloaded.
func TestCachedAnswerNeedsNoSlot(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 1), keys: true}
	f := newFixture(t, func(c *Config) {
		c.Querier = g
		c.Limits.MaxConcurrent = 1
		c.Limits.QueueWait = 200 * time.Millisecond
	})
	single := aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m")
	multi := "/v1/streams/pageviews/query?aggregate=latency&aggregate=users&" + join(rangeQuery(subFrom, subTo), "step=5m")
	first := map[string][]byte{}
	for _, q := range []string{single, multi} {
		r := f.get(t, q)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
		first[q] = r.body
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		f.get(t, "/v1/streams/pageviews/keys?"+rangeQuery(subFrom, subTo))
	}()
	<-g.entered // the key listing holds the only slot

	for _, q := range []string{single, multi} {
		r := f.get(t, q)
		if r.status != http.StatusOK || !bytes.Equal(r.body, first[q]) {
			t.Errorf("cached %s while the slot is held: %d (want 200 and the first bytes) %s", q, r.status, r.body)
		}
	}
	if n, m := g.nQuery.Load(), g.nMulti.Load(); n != 1 || m != 1 {
		t.Errorf("querier reached %d/%d times (single/multi), want 1/1", n, m)
	}
	r := f.get(t, aggPath+"users?"+rangeQuery(subFrom, subTo))
	if r.status != http.StatusServiceUnavailable || r.problem(t).Code != "overloaded" {
		t.Errorf("uncached question while the slot is held: %d %s, want 503 overloaded", r.status, r.body)
	}
	close(g.gate)
	<-done
	if r := f.get(t, aggPath+"users?"+rangeQuery(subFrom, subTo)); r.status != http.StatusOK {
		t.Errorf("after the slot freed: %d %s", r.status, r.body)
	}
}

// countingStreams counts the stream look-ups: every query request makes
// one before it looks at the answer cache.
type countingStreams struct {
	*fakeStreams
	gets atomic.Int64
}

func (c *countingStreams) Get(ctx context.Context, name string) (sketchd.StreamStatus, error) {
	c.gets.Add(1)
	return c.fakeStreams.Get(ctx, name)
}

// TestAnswerFlight: requests for the same uncached answer that arrive while
// it is being computed wait for that computation (holding no query slot)
// and get its bytes: the querier is reached once, not once per request.
func TestAnswerFlight(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64), queries: true}
	var cs *countingStreams
	f := newFixture(t, func(c *Config) {
		cs = &countingStreams{fakeStreams: c.Streams.(*fakeStreams)}
		c.Streams = cs
		c.Querier = g
		c.Limits.MaxConcurrent = 2
		c.Limits.QueueWait = 10 * time.Second
	})
	q := aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m")
	const n = 12
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
	for cs.gets.Load() < n {
		time.Sleep(time.Millisecond)
	}
	// Each has looked the stream up; give them the few microseconds to the
	// flight (a request arriving after the release finds the answer cached,
	// which this test cannot tell from the flight: it then passes weakly).
	time.Sleep(50 * time.Millisecond)
	close(g.gate)
	wg.Wait()
	for i := range n {
		if status[i] != http.StatusOK || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("request %d: %d, same bytes as the first %v: %s", i, status[i], bytes.Equal(bodies[i], bodies[0]), bodies[i])
		}
	}
	if got := g.nQuery.Load(); got != 1 {
		t.Errorf("querier reached %d times by %d requests for one answer, want 1", got, n)
	}
}

// TestAnswerFlightLeaderGone: when the request computing an answer is
// cancelled by its client, one of the requests waiting for it computes the
// answer for the others, and they all get it; they are not given the
// leader's cancellation, nor does each compute it alone.
func TestAnswerFlightLeaderGone(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64), queries: true}
	var cs *countingStreams
	f := newFixture(t, func(c *Config) {
		cs = &countingStreams{fakeStreams: c.Streams.(*fakeStreams)}
		c.Streams = cs
		c.Querier = g
	})
	q := aggPath + "users?" + join(rangeQuery(subFrom, subTo), "group_by=device", "step=5m")
	ctx, cancel := context.WithCancel(t.Context())
	leaderDone := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, q, nil).WithContext(ctx))
		leaderDone <- rec.Code
	}()
	<-g.entered // the leader computes, held at the gate
	const n = 3
	var wg sync.WaitGroup
	status := make([]int, n)
	for i := range n {
		wg.Go(func() { status[i] = f.get(t, q).status })
	}
	for cs.gets.Load() < n+1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // to the flight (see TestAnswerFlight)
	cancel()
	<-leaderDone
	close(g.gate)
	wg.Wait()
	for i, s := range status {
		if s != http.StatusOK {
			t.Errorf("waiter %d: %d after the leader's client left, want 200", i, s)
		}
	}
	if got := g.nQuery.Load(); got != 2 {
		t.Errorf("querier reached %d times, want 2 (the leader that left, and one waiter for the %d)", got, n)
	}
}

// TestAnswerFlightShedShared: when the request leading a computation is
// shed (503 overloaded: no query slot within the queue wait), the requests
// waiting for it get the same 503 at once; they do not each wait for a
// slot and compute alone (a herd an overloaded server sheds anyway).
func TestAnswerFlightShedShared(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}), gate: make(chan struct{}), entered: make(chan struct{}, 64), keys: true}
	var cs *countingStreams
	f := newFixture(t, func(c *Config) {
		cs = &countingStreams{fakeStreams: c.Streams.(*fakeStreams)}
		c.Streams = cs
		c.Querier = g
		c.Limits.MaxConcurrent = 1
		c.Limits.QueueWait = 400 * time.Millisecond
	})
	var wg sync.WaitGroup
	wg.Go(func() { f.get(t, "/v1/streams/pageviews/keys") }) // holds the only slot
	<-g.entered
	aq := aggPath + "users?" + join(rangeQuery(subFrom, subTo), "group_by=device", "step=5m")
	leader := make(chan int, 1)
	wg.Go(func() { leader <- f.get(t, aq).status })
	for cs.gets.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the leader waits for the slot
	const n = 4
	status := make([]int, n)
	for i := range n {
		wg.Go(func() { status[i] = f.get(t, aq).status })
	}
	for cs.gets.Load() < n+2 {
		time.Sleep(time.Millisecond)
	}
	if s := <-leader; s != http.StatusServiceUnavailable {
		t.Fatalf("leader: %d, want 503 (the slot is held)", s)
	}
	close(g.gate) // the slot frees as the leader is shed: a waiter computing alone would get it
	wg.Wait()
	for i, s := range status {
		if s != http.StatusServiceUnavailable {
			t.Errorf("waiter %d: %d, want the leader's 503", i, s)
		}
	}
	if got := g.nQuery.Load(); got != 0 {
		t.Errorf("querier reached %d times while every slot was held", got)
	}
}
