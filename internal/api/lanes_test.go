package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/promtest"
	"github.com/sketchd/sketchd/internal/query"
)

// spentReader is the real store, calling onScan with the estimated bytes
// of the request's computations so far (its lane ticket) before each scan.
type spentReader struct {
	query.PaneReader
	onScan func(ctx context.Context, spent int64) error
}

func (r spentReader) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	if tk, _ := ctx.Value(slotTicketKey{}).(*slotTicket); tk != nil && r.onScan != nil {
		tk.mu.Lock()
		spent := tk.spent
		tk.mu.Unlock()
		if err := r.onScan(ctx, spent); err != nil {
			return err
		}
	}
	return r.PaneReader.ScanPanes(ctx, id, keys, from, to, fn)
}

// laneFixture serves the API over the store fixture's Badger store read
// through rd's onScan, with a new querier.
func laneFixture(tb testing.TB, sf *storeFixture, onScan func(context.Context, int64) error, opts ...fixtureOpt) *fixture {
	tb.Helper()
	fx := &fixture{streams: sf.streams, store: sf.store, evs: sf.evs, status: sf.status, reg: prometheus.NewRegistry()}
	fx.mount(tb, newQuerier(tb, spentReader{PaneReader: sf.db, onScan: onScan}, query.Options{}), opts...)
	return fx
}

// TestHeavyQueriesLeaveCheapOnesASlot reproduces the starvation the load
// runner showed: heavy first computations (a 2-hour series of 1-minute
// windows per country, estimated past HeavyQueryCost) in flight, held at
// their first pane scan, and cheap questions (half an hour, estimated far
// below it) arriving meanwhile. With the lanes, the heavy lane has one of
// the four slots: one heavy question runs, and the three others wait for
// the heavy lane holding no slot (waiting: they all run once the first
// ends) or are shed from it (shed: HeavyQueueWait 50 ms, 503 overloaded
// saying the query is heavy); either way every cheap question is admitted
// and answered. Without them (HeavyPercent 100) the heavy questions hold
// every slot and the cheap ones get 503 overloaded: that case shows the
// test can fail. Admission is asserted, not durations.
func TestHeavyQueriesLeaveCheapOnesASlot(t *testing.T) {
	sf := newStoreFixture(t)
	whole := rangeQuery(t0, t0.Add(fixtureSpan))
	var heavy []string
	for _, agg := range []string{"users", "latency", "urls", "sample"} {
		heavy = append(heavy, aggPath+agg+"?"+join(whole, "group_by=country", "step=1m"))
	}
	var cheap []string
	for i := range 6 {
		from := t0.Add(time.Duration(10+i) * time.Minute)
		cheap = append(cheap, aggPath+"users?"+rangeQuery(from, from.Add(30*time.Minute)))
	}
	const heavyCost = 1000 // the heavy questions: about 1,900; the cheap ones: about 300

	for _, c := range []struct {
		name           string
		percent        int
		heavyWait      time.Duration
		blocked        int    // heavy questions held at the gate
		settled        string // the series that reaches len(heavy) - blocked before the cheap questions
		wantCheap      int
		wantHeavyOK    int // the others: 503 overloaded
		wantHeavyAdmit float64
	}{
		{"lanes_waiting", 25, 10 * time.Second, 1, `sketchd_query_lane_queued{lane="heavy"}`, http.StatusOK, 4, 4},
		{"lanes_shed", 25, 50 * time.Millisecond, 1, `sketchd_query_lane_shed_total{lane="heavy"}`, http.StatusOK, 1, 1},
		{"no_lanes", 100, 10 * time.Second, 4, `sketchd_query_lane_shed_total{lane="heavy"}`, http.StatusServiceUnavailable, 4, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			gate := make(chan struct{})
			entered := make(chan struct{}, 64)
			f := laneFixture(t, sf, func(ctx context.Context, spent int64) error {
				if spent <= heavyCost {
					return nil
				}
				entered <- struct{}{}
				select {
				case <-gate:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}, func(cfg *Config) {
				cfg.Limits.MaxConcurrent = 4
				cfg.Limits.HeavyPercent = c.percent
				cfg.Limits.HeavyQueryCost = heavyCost
				cfg.Limits.HeavyQueueWait = c.heavyWait
				cfg.Limits.QueueWait = 300 * time.Millisecond
			})
			var wg sync.WaitGroup
			heavyStatus := make([]response, len(heavy))
			for i, q := range heavy {
				wg.Go(func() { heavyStatus[i] = f.get(t, q) })
			}
			for range c.blocked {
				<-entered
			}
			for promtest.Value(t, f.reg, c.settled) < float64(len(heavy)-c.blocked) {
				time.Sleep(time.Millisecond)
			}

			cheapStatus := make([]response, len(cheap))
			var cw sync.WaitGroup
			for i, q := range cheap {
				cw.Go(func() { cheapStatus[i] = f.get(t, q) })
			}
			cw.Wait()
			close(gate)
			wg.Wait()

			for i, r := range cheapStatus {
				if r.status != c.wantCheap {
					t.Errorf("cheap %s with %d heavy questions running: %d %s, want %d", cheap[i], c.blocked, r.status, r.body, c.wantCheap)
				}
			}
			ok := 0
			for i, r := range heavyStatus {
				switch {
				case r.status == http.StatusOK:
					ok++
				case r.status != http.StatusServiceUnavailable || r.problem(t).Code != codeOverloaded || !strings.Contains(r.problem(t).Detail, "heavy"):
					t.Errorf("heavy %s: %d %s, want 200 or 503 overloaded as heavy", heavy[i], r.status, r.body)
				}
			}
			if ok != c.wantHeavyOK {
				t.Errorf("%d heavy questions answered, want %d", ok, c.wantHeavyOK)
			}
			if got := promtest.Value(t, f.reg, `sketchd_query_lane_admitted_total{lane="heavy"}`); got != c.wantHeavyAdmit {
				t.Errorf("heavy lane admitted %v, want %v", got, c.wantHeavyAdmit)
			}
			if c.wantCheap == http.StatusOK {
				if got := promtest.Value(t, f.reg, `sketchd_query_lane_shed_total{lane="cheap"}`); got != 0 {
					t.Errorf("cheap lane shed %v, want 0", got)
				}
			}
		})
	}
}

// TestQueueWaitPerLane: each lane sheds behind its own standing queue, the
// heavy lane with ten times the cheap lane's interval and target.
func TestQueueWaitPerLane(t *testing.T) {
	s := &server{limits: DefaultLimits()}
	for _, c := range []struct {
		lane     lane
		standing time.Duration
		want     time.Duration
	}{
		{laneCheap, 0, time.Second},
		{laneCheap, shedInterval, time.Second},
		{laneCheap, shedInterval + 1, shedTarget},
		{laneHeavy, 0, 5 * time.Second},
		{laneHeavy, shedInterval + 1, 5 * time.Second},
		{laneHeavy, heavyShedInterval + 1, 200 * time.Millisecond},
	} {
		if got := s.queueWait(c.lane, c.standing); got != c.want {
			t.Errorf("%s lane, queue standing %s: wait %s, want %s", c.lane, c.standing, got, c.want)
		}
	}
}

// TestStaleRefreshHasItsOwnLane: a background refresh (flight.go) is
// admitted by its own cost with a ticket of its own, not through the
// ticket of the request it started from, which was answered stale and
// released before the refresh computes. Every computation is heavy here
// (HeavyQueryCost 1): the first answer, the busy question and the refresh
// each go through the heavy lane.
func TestStaleRefreshHasItsOwnLane(t *testing.T) {
	f, g, q, busy := refreshHeld(t, func(cf *Config) { cf.Limits.HeavyQueryCost = 1 })
	close(g.gate)
	busy.Wait()
	for promtest.Value(t, f.reg, `sketchd_query_lane_admitted_total{lane="heavy"}`) < 3 && f.get(t, q).header.Get(hdrStale) == "true" {
		time.Sleep(time.Millisecond)
	}
	if got := promtest.Value(t, f.reg, `sketchd_query_lane_admitted_total{lane="heavy"}`); got != 3 {
		t.Errorf("heavy lane admitted %v, want 3 (the first answer, the busy question, the refresh)", got)
	}
}

// TestHeavyRefusedForASlot: a heavy request that got its token but no slot
// within the heavy lane's wait is told that the slots are taken (not that
// heavy queries are), and its ticket keeps the refusal, so no later
// computation of the request runs without a slot.
func TestHeavyRefusedForASlot(t *testing.T) {
	l := DefaultLimits()
	l.MaxConcurrent, l.HeavyPercent, l.HeavyQueueWait = 1, 100, 100*time.Millisecond
	ls, err := newLanes(l, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &server{limits: l, slots: make(chan struct{}, 1), lanes: ls}
	s.slots <- struct{}{}       // the request's own slot
	s.lanes.heavy <- struct{}{} // another heavy request's token
	tk := &slotTicket{held: true}
	done := make(chan error, 1)
	go func() {
		tk.mu.Lock()
		defer tk.mu.Unlock()
		done <- s.promote(t.Context(), tk)
	}()
	s.slots <- struct{}{} // a cheap request takes the slot promote gave back
	<-s.lanes.heavy       // the other heavy request ends: promote gets its token
	err = <-done
	var he *httpError
	if !errors.As(err, &he) || he.code != codeOverloaded || strings.Contains(he.detail, "heavy") || !strings.Contains(he.detail, "queries are running") {
		t.Fatalf("promote = %v, want overloaded for want of a slot", err)
	}
	if tk.held || !tk.heavy {
		t.Fatalf("ticket held %v heavy %v, want no slot and the token (released with the ticket)", tk.held, tk.heavy)
	}
	if got := s.onCost(t.Context(), tk, 1); got != err {
		t.Errorf("a later computation's cost: %v, want the refusal", got)
	}
	if got := s.acquireTicket(t.Context(), tk); got != err {
		t.Errorf("a later slot: %v, want the refusal", got)
	}
	s.release(tk)
	if len(s.lanes.heavy) != 0 {
		t.Errorf("%d heavy tokens left after release", len(s.lanes.heavy))
	}
}

// TestHeavyRefreshLeavesTheRefreshLine: background refreshes run one at a
// time; one that turns heavy and waits for the heavy lane (its token held
// by another request) leaves the line, so another question's refresh runs
// meanwhile instead of queueing behind the wait for up to HeavyQueueWait.
// Without leaving, the cheap refresh ran only after the heavy one gave up.
func TestHeavyRefreshLeavesTheRefreshLine(t *testing.T) {
	l := DefaultLimits()
	l.MaxConcurrent, l.HeavyPercent, l.HeavyQueryCost, l.HeavyQueueWait = 2, 50, 10, 3*time.Second
	ls, err := newLanes(l, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &server{limits: l, slots: make(chan struct{}, l.MaxConcurrent), lanes: ls,
		refreshing: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
	s.bg.open()
	defer s.bg.close()
	s.lanes.heavy <- struct{}{} // another request holds the only heavy token
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
	refresh := func(key string, compute func(context.Context) ([]byte, error)) *answerFlight {
		fl, _, _ := s.flights.join(key)
		s.refresh(r, key, key, fl, compute)
		return fl
	}
	promoting := make(chan struct{})
	heavy := refresh("heavy", func(ctx context.Context) ([]byte, error) {
		tk, _ := ctx.Value(slotTicketKey{}).(*slotTicket)
		close(promoting)
		return []byte("heavy"), s.onCost(ctx, tk, 100) // past HeavyQueryCost: waits for the token
	})
	<-promoting
	cheap := refresh("cheap", func(context.Context) ([]byte, error) { return []byte("cheap"), nil })
	select {
	case <-cheap.done:
		if cheap.err != nil {
			t.Fatalf("cheap refresh: %v", cheap.err)
		}
	case <-heavy.done:
		t.Fatalf("the heavy refresh ended (%v) before the cheap one ran: it kept the refresh line while it waited", heavy.err)
	}
	<-s.lanes.heavy // the other request ends: the heavy refresh gets the token
	<-heavy.done
	if heavy.err != nil || string(heavy.body) != "heavy" {
		t.Fatalf("heavy refresh: %q, %v", heavy.body, heavy.err)
	}
	for len(s.refreshing) != 0 || len(s.slots) != 0 || len(s.lanes.heavy) != 0 {
		time.Sleep(time.Millisecond) // released after the flight finished
	}
}
