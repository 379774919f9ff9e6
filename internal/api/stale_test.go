package api

import (
	"bytes"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/promtest"
	"github.com/sketchd/sketchd/internal/query"
)

// commitFixture moves the fixture's stream to a new commit (a second
// later), as a commit of the ingest does: every answer's key changes.
func commitFixture(f *fixture) {
	f.streams.mu.Lock()
	defer f.streams.mu.Unlock()
	st := f.streams.streams[f.status.Spec.Name]
	st.LastCommit = st.LastCommit.Add(time.Second)
	f.streams.streams[st.Spec.Name] = st
}

// TestStaleWhileAnotherComputes: after a commit, the request that asks a
// question first computes its new answer; requests for the same question
// that arrive meanwhile get the previous commit's answer at once, marked
// stale (header, metric), instead of waiting; afterwards everyone gets the
// new answer. The leader is never given a stale answer; with
// StaleAnswerAge negative, an answer older than it, or a request that says
// Cache-Control: no-cache, they wait.
func TestStaleWhileAnotherComputes(t *testing.T) {
	for _, c := range []struct {
		name      string
		age       time.Duration
		hdr       []string // the followers' request headers
		wantStale bool
	}{
		{"default", 0, nil, true},
		{"disabled", -1, nil, false},
		{"too old", time.Nanosecond, nil, false},
		{"no-cache", 0, []string{"Cache-Control", "max-age=0, No-Cache"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
				gate: make(chan struct{}), entered: make(chan struct{}, 64)}
			f := newFixture(t, func(cf *Config) {
				cf.Querier = g
				cf.Limits.StaleAnswerAge = c.age
			})
			q := aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m")
			old := f.get(t, q)
			if old.status != http.StatusOK || old.header.Get(hdrStale) != "" {
				t.Fatalf("first answer: %d stale=%q %s", old.status, old.header.Get(hdrStale), old.body)
			}

			commitFixture(f)
			g.queries = true // the next computation waits at the gate
			var wg sync.WaitGroup
			var leader response
			wg.Go(func() { leader = f.get(t, q) })
			<-g.entered
			const n = 4
			followers := make([]response, n)
			if c.wantStale {
				for i := range followers {
					followers[i] = f.get(t, q, c.hdr...) // does not wait for the gate
				}
				close(g.gate)
			} else {
				for i := range followers {
					wg.Go(func() { followers[i] = f.get(t, q, c.hdr...) })
				}
				time.Sleep(50 * time.Millisecond) // to the flight (TestAnswerFlight)
				close(g.gate)
			}
			wg.Wait()

			if leader.status != http.StatusOK || leader.header.Get(hdrStale) != "" || bytes.Equal(leader.body, old.body) {
				t.Fatalf("leader: %d stale=%q, same bytes as before the commit %v", leader.status, leader.header.Get(hdrStale), bytes.Equal(leader.body, old.body))
			}
			for i, r := range followers {
				want := leader.body
				if c.wantStale {
					want = old.body
				}
				if r.status != http.StatusOK || !bytes.Equal(r.body, want) || (r.header.Get(hdrStale) == "true") != c.wantStale {
					t.Errorf("follower %d: %d stale=%q, the expected bytes %v (want stale %v)", i, r.status, r.header.Get(hdrStale), bytes.Equal(r.body, want), c.wantStale)
				}
			}
			if r := f.get(t, q); !bytes.Equal(r.body, leader.body) || r.header.Get(hdrStale) != "" {
				t.Errorf("after the computation: stale=%q, the new bytes %v", r.header.Get(hdrStale), bytes.Equal(r.body, leader.body))
			}
			wantMetric := 0.0
			if c.wantStale {
				wantMetric = n
			}
			if got := promtest.Value(t, f.reg, "sketchd_http_stale_answers_total"); got != wantMetric {
				t.Errorf("sketchd_http_stale_answers_total = %v, want %v", got, wantMetric)
			}
		})
	}
}

// TestStaleWhileBusy: while another question is being computed (a busy
// server), the request that would lead the computation of a question's
// answer at a new commit gets the previous answer at once, marked stale,
// and the new one is computed in the background: the next request gets it.
// A question never answered before is computed by its request, busy or
// not.
func TestStaleWhileBusy(t *testing.T) {
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	f := newFixture(t, func(cf *Config) { cf.Querier = g })
	q := aggPath + "latency?" + join(rangeQuery(subFrom, subTo), "group_by=country", "step=5m")
	other := aggPath + "users?" + join(rangeQuery(subFrom, subTo), "step=5m")
	old := f.get(t, q)
	if old.status != http.StatusOK {
		t.Fatalf("first answer: %d %s", old.status, old.body)
	}

	commitFixture(f)
	g.queries = true
	var wg sync.WaitGroup
	var busy response
	wg.Go(func() { busy = f.get(t, other) }) // never answered: computes, held at the gate
	<-g.entered
	r := f.get(t, q) // would lead: answered stale, refreshed in the background
	if r.status != http.StatusOK || r.header.Get(hdrStale) != "true" || !bytes.Equal(r.body, old.body) {
		t.Fatalf("while busy: %d stale=%q, the previous bytes %v", r.status, r.header.Get(hdrStale), bytes.Equal(r.body, old.body))
	}
	<-g.entered // the refresh computes
	close(g.gate)
	wg.Wait()
	if busy.status != http.StatusOK || busy.header.Get(hdrStale) != "" {
		t.Errorf("the question never answered before: %d stale=%q", busy.status, busy.header.Get(hdrStale))
	}
	r = freshAnswer(t, f, q)
	if r.status != http.StatusOK || r.header.Get(hdrStale) != "" || bytes.Equal(r.body, old.body) {
		t.Fatalf("after the refresh: %d stale=%q, the previous bytes %v", r.status, r.header.Get(hdrStale), bytes.Equal(r.body, old.body))
	}
	if got := g.nQuery.Load(); got != 3 {
		t.Errorf("querier reached %d times, want 3 (before the commit, the other question, the refresh)", got)
	}
}

// TestStaleAcrossClockMove: a question whose range is relative to now (no
// from or to: the last hour) asks for another range once the clock has
// moved on, but it is the same question: while the server is busy, its
// answer before the move is served stale and the new range's is computed
// in the background; a fixed range asked for the first time is computed
// by its request. Before, the range was part of the question, and every
// "last hour" question computed in its request at each minute.
func TestStaleAcrossClockMove(t *testing.T) {
	f, g, now := clockFixture(t)
	for i, q := range []string{
		aggPath + "latency?group_by=country&step=5m",
		"/v1/streams/pageviews/query?aggregate=latency&aggregate=users&from=now-2h&to=now&step=5m",
	} {
		t.Run(q, func(t *testing.T) {
			g.queries = false
			old := f.get(t, q)
			if old.status != http.StatusOK || old.header.Get(hdrStale) != "" {
				t.Fatalf("first answer: %d stale=%q %s", old.status, old.header.Get(hdrStale), old.body)
			}
			now.Add(int64(5 * time.Minute))
			commitFixture(f)
			g.gate, g.queries = make(chan struct{}), true
			fixed := aggPath + "users?" + join(rangeQuery(subFrom, subTo.Add(time.Duration(i+1)*time.Minute)), "step=5m")
			var wg sync.WaitGroup
			var busy response
			wg.Go(func() { busy = f.get(t, fixed) }) // never asked: computes, held at the gate
			<-g.entered

			got := make(chan response, 1)
			go func() { got <- f.get(t, q) }()
			var r response
			select {
			case r = <-got:
			case <-time.After(10 * time.Second):
				close(g.gate)
				t.Fatal("the moved question computed in its request (held at the gate) instead of being answered stale")
			}
			if r.status != http.StatusOK || r.header.Get(hdrStale) != "true" || !bytes.Equal(r.body, old.body) {
				t.Fatalf("after the move, while busy: %d stale=%q, the previous bytes %v", r.status, r.header.Get(hdrStale), bytes.Equal(r.body, old.body))
			}
			<-g.entered // the refresh computes the moved range
			close(g.gate)
			wg.Wait()
			if busy.status != http.StatusOK || busy.header.Get(hdrStale) != "" {
				t.Errorf("a fixed range asked first: %d stale=%q", busy.status, busy.header.Get(hdrStale))
			}
			r = freshAnswer(t, f, q)
			if r.status != http.StatusOK || r.header.Get(hdrStale) != "" || bytes.Equal(r.body, old.body) {
				t.Fatalf("after the refresh: %d stale=%q, the previous bytes %v", r.status, r.header.Get(hdrStale), bytes.Equal(r.body, old.body))
			}
		})
	}
}

// TestMovesWithClock: which ranges are relative to the request's now.
func TestMovesWithClock(t *testing.T) {
	for q, want := range map[string]bool{
		"":                                    true,
		"from=now-1h":                         true,
		"to=now":                              true,
		"from=now-1d/d&to=now/d":              true,
		"from=2026-01-02T15:04:05Z":           true, // to is now
		"to=2026-01-02T15:04:05Z":             false,
		"from=1767366245&to=1767369845":       false,
		"from=now-1h&to=2026-01-02T15:04:05Z": true,
		"from=2026-01-02T14:00:00Z&to=now-5m": true,
		"from=1767366245000&to=1767369845000": false,
	} {
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		if got := movesWithClock(v); got != want {
			t.Errorf("%q: moves with the clock %v, want %v", q, got, want)
		}
	}
}

// TestStaleNotAcrossAggregates: two aggregates asked with the same query
// string over a range relative to now are two questions (the aggregate is
// in the path, not the query string): after a clock move, on a busy
// server, the one never asked is computed, never given the other's answer.
func TestStaleNotAcrossAggregates(t *testing.T) {
	f, g, now := clockFixture(t)
	const qs = "?group_by=country&step=5m"
	if r := f.get(t, aggPath+"users"+qs); r.status != http.StatusOK {
		t.Fatalf("users: %d %s", r.status, r.body)
	}
	now.Add(int64(5 * time.Minute))
	commitFixture(f)
	g.queries = true
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(g.gate)
	wg.Go(func() { f.get(t, aggPath+"urls"+qs) }) // another question, held at the gate: busy
	<-g.entered
	got := make(chan response, 1)
	go func() { got <- f.get(t, aggPath+"latency"+qs) }()
	select {
	case <-g.entered: // latency computes: right
	case r := <-got:
		t.Fatalf("latency answered without computing: %d stale=%q %s", r.status, r.header.Get(hdrStale), r.body)
	case <-time.After(10 * time.Second):
		t.Fatal("latency neither answered nor computed")
	}
}

// freshAnswer asks q until it is not answered stale (its refresh in the
// background has landed), for at most 10 s, and returns the last answer.
func freshAnswer(t *testing.T, f *fixture, q string) response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.get(t, q)
		if r.header.Get(hdrStale) == "" || time.Now().After(deadline) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clockFixture is a fixture whose querier computes only through the gate
// (gateQuerier, once queries is set) and whose clock, from the end of the
// fixture's span, the test moves.
func clockFixture(t *testing.T) (*fixture, *gateQuerier, *atomic.Int64) {
	t.Helper()
	now := new(atomic.Int64)
	now.Store(t0.Add(fixtureSpan).UnixNano())
	g := &gateQuerier{Querier: newQuerier(t, sharedStoreFor(t), query.Options{}),
		gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	f := newFixture(t, func(cf *Config) {
		cf.Querier = g
		cf.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	return f, g, now
}
