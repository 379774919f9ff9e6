package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
)

// heldStore is the real store whose pane reads wait once it is held,
// until it is released: a shard that needs a pane it does not hold waits
// in its load, its queue fills, and the aggregator's Process blocks on it
// (backpressure), holding the aggregator's lock. The API's reads (stream
// specs, checkpoints, range scans) are not held.
type heldStore struct {
	*store.DB
	held     atomic.Bool
	released chan struct{} // closed by release
	waited   chan struct{} // closed by the first read that waits
	once     [2]sync.Once  // closing waited, released
}

func newHeldStore(db *store.DB) *heldStore {
	return &heldStore{DB: db, released: make(chan struct{}), waited: make(chan struct{})}
}

func (s *heldStore) hold()    { s.held.Store(true) }
func (s *heldStore) release() { s.once[1].Do(func() { close(s.released) }) }

func (s *heldStore) Pane(ctx context.Context, id uint32, key string, start int64) (sketchd.PaneRecord, bool, error) {
	if s.held.Load() {
		s.once[0].Do(func() { close(s.waited) })
		select {
		case <-s.released:
		case <-ctx.Done():
			return sketchd.PaneRecord{}, false, ctx.Err()
		}
	}
	return s.DB.Pane(ctx, id, key, start)
}

// TestQueriesDoNotWaitForIngestion fills the shard queue of a stream so
// that Process blocks while holding the aggregator's lock, and checks that
// GET /v1/streams/{name} and an aggregate query through the real router
// still answer, within their deadline, from the published status and the
// store.
//
//	go test -race ./internal/ingest -run TestQueriesDoNotWaitForIngestion -v
func TestQueriesDoNotWaitForIngestion(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := newHeldStore(openStore(t, t.TempDir()))
	ctx := context.Background()
	spec := pageviews("held", true)
	m := newManager(t, nc, db, Options{QueueMessages: 1, Window: window.Options{Shards: 1, QueueLen: 1}})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	const deadline = 2 * time.Second
	srv := httptest.NewServer(newTestAPI(t, m, db.DB, deadline))
	defer srv.Close()
	client := &http.Client{Timeout: deadline}
	// Release before the server closes and Stop: both wait for what the
	// hold blocks.
	defer db.release()

	// A first part, committed: what the query must find.
	evs := genEvents(31, 300)
	first, second := evs[:100], evs[100:]
	for _, e := range first {
		if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "the first part committed", func() (bool, string) {
		st := mustStatus(t, m, spec.Name)
		_, total := paneTotals(t, db.DB, st.ID)
		return total == uint64(len(first)) && applied(st) == uint64(len(first)), fmt.Sprintf("%d in panes, %d applied", total, applied(st))
	})
	before := mustStatus(t, m, spec.Name)

	// The second part lies in panes not in memory: the shard loads them,
	// and waits.
	db.hold()
	for i, e := range second {
		e.TS = base.Add(time.Hour + time.Duration(i)*time.Second).UnixMilli()
		if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	<-db.waited
	r := runnerOf(t, m, spec.Name)
	waitAggregatorLocked(t, r.agg)

	var st struct {
		Name     string           `json:"name"`
		State    string           `json:"state"`
		Counters sketchd.Counters `json:"counters"`
	}
	getJSON(t, client, srv.URL+"/v1/streams/"+spec.Name, &st)
	if st.Name != spec.Name || st.State != "running" || st.Counters.OnTime < before.Counters.OnTime {
		t.Errorf("stream status %+v, want running with at least the %d events of the first part", st, before.Counters.OnTime)
	}

	var res struct {
		Groups []struct {
			Windows []struct {
				Events uint64 `json:"events"`
			} `json:"windows"`
		} `json:"groups"`
	}
	q := url.Values{
		"from": {base.Add(-time.Hour).Format(time.RFC3339)},
		"to":   {base.Add(3 * time.Hour).Format(time.RFC3339)},
	}
	getJSON(t, client, srv.URL+"/v1/streams/"+spec.Name+"/aggregates/users?"+q.Encode(), &res)
	var n uint64
	for _, g := range res.Groups {
		for _, w := range g.Windows {
			n += w.Events
		}
	}
	if n != uint64(len(first)) {
		t.Errorf("the query counts %d events, want the %d committed", n, len(first))
	}

	// Released, ingestion catches up: nothing was lost to the wait.
	db.release()
	waitFor(t, 20*time.Second, "everything committed", func() (bool, string) {
		st := mustStatus(t, m, spec.Name)
		_, total := paneTotals(t, db.DB, st.ID)
		return total == uint64(len(evs)), fmt.Sprintf("%d of %d in panes", total, len(evs))
	})
}

// waitAggregatorLocked waits until the aggregator's lock is held by a
// blocked Process: a Tick, which takes the lock and returns at once when
// the stream is not idle, has not returned for a second. (Between two
// batches the lock is free: the probe is repeated until it blocks.)
func waitAggregatorLocked(tb testing.TB, agg *window.Aggregator) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ticked := make(chan struct{})
		go func() {
			defer close(ticked)
			_ = agg.Tick(context.Background(), 0)
		}()
		select {
		case <-ticked:
		case <-time.After(time.Second):
			return // blocked
		}
	}
	tb.Fatal("the aggregator's lock stays free: Process is not blocked on a full shard queue")
}

// newTestAPI is the real router over m and the store.
func newTestAPI(tb testing.TB, m *Manager, db *store.DB, timeout time.Duration) http.Handler {
	tb.Helper()
	limits := api.DefaultLimits()
	limits.Timeout = timeout
	h, err := api.New(api.Config{Streams: m, Querier: newQuerier(tb, db, query.Options{}), Limits: limits})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// getJSON GETs u and decodes its 200 answer into v; the client's timeout is
// the deadline.
func getJSON(tb testing.TB, client *http.Client, u string, v any) {
	tb.Helper()
	start := time.Now()
	resp, err := client.Get(u)
	if err != nil {
		tb.Fatalf("GET %s: %v (after %s)", u, err, time.Since(start).Round(time.Millisecond))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
}
