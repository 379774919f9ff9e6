package api

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// gatedQuerier holds every query until gate is closed.
type gatedQuerier struct {
	gate    chan struct{}
	entered chan struct{}
}

func (q gatedQuerier) Query(ctx context.Context, _ query.Target, _ query.Query) (*query.Result, error) {
	q.entered <- struct{}{}
	select {
	case <-q.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, context.Canceled
}

func (q gatedQuerier) Keys(ctx context.Context, _ query.Target, _, _ int64, _ map[string][]string, _ int) ([]map[string]string, bool, error) {
	q.entered <- struct{}{}
	select {
	case <-q.gate:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	return nil, false, nil
}

func (q gatedQuerier) KeysFiltered(ctx context.Context, t query.Target, from, to int64, _ []query.Filter, limit int) ([]map[string]string, bool, error) {
	return q.Keys(ctx, t, from, to, nil, limit)
}

func (q gatedQuerier) QueryMulti(ctx context.Context, t query.Target, qu query.Query, _ []string) ([]*query.Result, error) {
	res, err := q.Query(ctx, t, qu)
	return []*query.Result{res}, err
}

// TestAdmission: with every query slot taken, a query waits the queue wait
// and gets 503 overloaded with Retry-After, while routes that do not query
// still answer; when a slot frees, queries run again.
func TestAdmission(t *testing.T) {
	q := gatedQuerier{gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	f := newFixture(t, func(c *Config) {
		c.Querier = q
		c.Limits.MaxConcurrent = 2
		c.Limits.QueueWait = 50 * time.Millisecond
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { f.get(t, "/v1/streams/pageviews/keys") })
	}
	<-q.entered
	<-q.entered

	r := f.get(t, aggPath+"users")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", r.status, r.body)
	}
	if p := r.problem(t); p.Code != "overloaded" {
		t.Fatalf("code %q, want overloaded", p.Code)
	}
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q, want 1", got)
	}
	if r := f.get(t, "/v1/streams/pageviews"); r.status != http.StatusOK {
		t.Fatalf("stream status while overloaded: %d %s", r.status, r.body)
	}

	close(q.gate)
	wg.Wait()
	if r := f.get(t, "/v1/streams/pageviews/keys"); r.status != http.StatusOK {
		t.Fatalf("after the slots freed: %d %s", r.status, r.body)
	}
}

// TestAdmissionShedsStandingQueue: behind a queue that has stood longer
// than shedInterval, a query is refused 503 overloaded after shedTarget,
// not after the whole QueueWait (10 s here), while the query that started
// the queue still waits its QueueWait and runs when a slot frees. Without
// it a few seconds of overload became a queue that outlived them.
func TestAdmissionShedsStandingQueue(t *testing.T) {
	q := gatedQuerier{gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	f := newFixture(t, func(c *Config) {
		c.Querier = q
		c.Limits.MaxConcurrent = 1
		c.Limits.QueueWait = 10 * time.Second
	})
	var wg sync.WaitGroup
	wg.Go(func() { f.get(t, "/v1/streams/pageviews/keys") }) // holds the slot
	<-q.entered
	first := make(chan int, 1)
	wg.Go(func() { first <- f.get(t, "/v1/streams/pageviews/keys").status }) // waits: the queue starts
	time.Sleep(3 * shedInterval)
	start := time.Now()
	r := f.get(t, aggPath+"users")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", r.status, r.body)
	}
	if p := r.problem(t); p.Code != "overloaded" {
		t.Fatalf("code %q, want overloaded", p.Code)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("refused after %s: it waited the queue wait behind a standing queue", waited)
	}
	close(q.gate) // the slot frees: the first waiter runs
	<-q.entered
	if s := <-first; s != http.StatusOK {
		t.Fatalf("the query that started the queue: %d, want 200 (it waits QueueWait)", s)
	}
	wg.Wait()
}
