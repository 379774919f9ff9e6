package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd/internal/query"
)

// Query lanes (Druid's "hilo" laning, by cost instead of priority). At
// load the first computation of a long unaligned series (a day of hourly
// windows merged from minute panes: 1-4 s on a busy 2-core box) held query
// slots for seconds; a few of them took every slot, the queue stood, CoDel
// (shed.go) shed the cheap questions behind them with 503 overloaded, and
// those would have taken milliseconds.
//
// So a computation reports its estimated cost before it reads any pane
// (query.CostHook: the stored sketches it reads, keys × pane slots, and the
// bytes it holds). Every request starts in the cheap lane, with one of the
// Limits.MaxConcurrent slots; once the computations of one request are
// estimated past Limits.HeavyQueryCost in total, it is heavy and needs a
// token of the heavy lane too, of which there are Limits.HeavyPercent of
// the slots (rounded up). A heavy request that finds the heavy lane full
// gives its slot back while it waits for a token (and then for a slot), so
// the heavy requests waiting never hold the slots the cheap ones need.
// Each lane has its own queue and shedding (shed.go), so a standing queue
// of heavy requests sheds heavy requests and leaves the cheap ones the
// whole QueueWait. A heavy request may wait longer for its lane
// (Limits.HeavyQueueWait) than a cheap one for a slot: it waits holding
// no slot, its computation takes seconds at load anyway, and the requests
// for the same question wait for it (flight.go) rather than each queueing.
// Heavy requests keep their stale answers too. The query memory budget
// (query.Options.TotalQueryBytes) has no lane share: the heavy tokens only
// bound how many heavy requests reserve from it at once.

type lane int

const (
	laneCheap lane = iota
	laneHeavy
)

func (l lane) String() string {
	if l == laneHeavy {
		return "heavy"
	}
	return "cheap"
}

// lanes holds the heavy lane and the metrics of both (the cheap lane is
// the server's slots and queue).
type lanes struct {
	heavy    chan struct{} // one token per heavy request running
	queue    slotQueue     // the heavy requests waiting
	admitted *prometheus.CounterVec
	shed     *prometheus.CounterVec
	wait     *prometheus.HistogramVec
	queued   *prometheus.GaugeVec
}

// heavySlots is Limits.HeavyPercent of Limits.MaxConcurrent, rounded up.
func heavySlots(l Limits) int {
	return max(1, (l.MaxConcurrent*min(l.HeavyPercent, 100)+99)/100)
}

func newLanes(l Limits, reg prometheus.Registerer) (*lanes, error) {
	ls := &lanes{
		heavy: make(chan struct{}, heavySlots(l)),
		admitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_query_lane_admitted_total",
			Help: "Query computations admitted, by lane: cheap (a query slot) or heavy (a request estimated past the heavy cost: a slot and a heavy-lane token).",
		}, []string{"lane"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_query_lane_shed_total",
			Help: "Query computations refused with 503 overloaded, by lane: no slot (cheap) or heavy-lane token (heavy) within the lane's queue wait.",
		}, []string{"lane"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sketchd_query_lane_wait_seconds",
			Help:    "Time a query computation waited for its lane, by lane (0 when a slot or token was free).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5ms .. 8s: a heavy wait is up to HeavyQueueWait (5s)
		}, []string{"lane"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sketchd_query_lane_queued",
			Help: "Query computations waiting for their lane now, by lane.",
		}, []string{"lane"}),
	}
	for _, c := range []prometheus.Collector{ls.admitted, ls.shed, ls.wait, ls.queued} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register lane metrics: %w", err)
		}
	}
	for _, l := range []lane{laneCheap, laneHeavy} { // both series exist from the start
		ls.admitted.WithLabelValues(l.String())
		ls.shed.WithLabelValues(l.String())
		ls.queued.WithLabelValues(l.String())
	}
	return ls, nil
}

// observe records one admission attempt of lane l that waited d.
func (ls *lanes) observe(l lane, d time.Duration, err error) {
	var he *httpError
	switch {
	case err == nil:
		ls.admitted.WithLabelValues(l.String()).Inc()
	case errors.As(err, &he) && he.code == codeOverloaded:
		ls.shed.WithLabelValues(l.String()).Inc()
	default:
		return // the request went away
	}
	ls.wait.WithLabelValues(l.String()).Observe(d.Seconds())
}

// withTicket returns ctx carrying the ticket tk and the cost hook that
// moves its request to the heavy lane (onCost).
func (s *server) withTicket(ctx context.Context, tk *slotTicket) context.Context {
	ctx = context.WithValue(ctx, slotTicketKey{}, tk)
	return query.WithCostHook(ctx, func(ctx context.Context, c query.Cost) error {
		return s.onCost(ctx, tk, c.Units())
	})
}

// onCost adds the estimated cost of one computation to its request's and
// moves the request to the heavy lane when it passes Limits.HeavyQueryCost.
// A request that holds no slot (a route admitted otherwise) is left alone.
func (s *server) onCost(ctx context.Context, tk *slotTicket, units int64) error {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.spent += units
	if tk.refused != nil {
		return tk.refused
	}
	if !tk.held || tk.heavy || tk.spent <= s.limits.HeavyQueryCost {
		return nil
	}
	s.log.DebugContext(ctx, "heavy computation", "request_id", requestIDFrom(ctx), "cost", tk.spent, "last_part", units)
	return s.promote(ctx, tk)
}

// promote takes a heavy-lane token for the request of tk, which holds a
// slot: at once when one is free; otherwise it gives the slot back, waits
// in the heavy lane's queue for a token and then for a slot, both within
// one queue wait of the heavy lane. A request refused here keeps its
// refusal (tk.refused): it holds no slot, so any later computation of it
// must not run.
func (s *server) promote(ctx context.Context, tk *slotTicket) error {
	select {
	case s.lanes.heavy <- struct{}{}:
		tk.heavy = true
		s.lanes.observe(laneHeavy, 0, nil)
		return nil
	default:
	}
	start := time.Now()
	<-s.slots
	tk.held = false
	if tk.leaveLine != nil {
		tk.leaveLine()
		tk.leaveLine = nil
	}
	deadline := start.Add(s.limits.HeavyQueueWait)
	err := s.wait(ctx, s.lanes.heavy, &s.lanes.queue, laneHeavy, deadline)
	if err == nil {
		tk.heavy = true
		if err = s.wait(ctx, s.slots, &s.lanes.queue, laneHeavy, deadline); err == nil {
			tk.held = true
		}
	}
	s.lanes.observe(laneHeavy, time.Since(start), err)
	tk.refused = err
	return err
}

// release gives back what tk holds.
func (s *server) release(tk *slotTicket) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.held {
		<-s.slots
	}
	if tk.heavy {
		<-s.lanes.heavy
	}
	tk.held, tk.heavy = false, false
}

// wait puts a token in sem (the slots or the heavy lane's tokens) for lane
// l, waiting as long as queueWait allows behind q, the lane's queue
// (shed.go), and no later than deadline (zero: none); past it, the 503
// overloaded error.
func (s *server) wait(ctx context.Context, sem chan struct{}, q *slotQueue, l lane, deadline time.Time) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	now := time.Now()
	wait := s.queueWait(l, q.enter(now))
	if !deadline.IsZero() {
		wait = max(0, min(wait, deadline.Sub(now)))
	}
	queued := s.lanes.queued.WithLabelValues(l.String())
	queued.Inc()
	defer func() {
		queued.Dec()
		q.leave()
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return nil
	case <-t.C:
		if sem == s.lanes.heavy {
			return &httpError{code: codeOverloaded, detail: fmt.Sprintf(
				"this query is heavy (estimated cost past %d), %d heavy queries are running and none finished within %s; retry later, or ask for a range aligned to the step (from on its grid) that the caches and rollup tiers serve",
				s.limits.HeavyQueryCost, cap(s.lanes.heavy), wait)}
		}
		return &httpError{code: codeOverloaded,
			detail: fmt.Sprintf("%d queries are running and none finished within %s; retry later", cap(s.slots), wait)}
	case <-ctx.Done():
		return ctx.Err()
	}
}
