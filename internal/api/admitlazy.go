package api

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Answers of the answer cache are served without a query slot: a hit costs
// microseconds, and making it wait behind the queries that compute (or shed
// it with 503 when they are slow) is what made the cache useless at load.
// Routes that can answer from the cache (aggregate and multi-aggregate
// queries) are admitted lazily: admitLazy puts a ticket in the request's
// context and the handler takes a slot with s.acquire only when it has to
// compute; the slot is released when the handler returns. The ticket also
// carries the request's lane (lanes.go).

type slotTicketKey struct{}

// slotTicket records whether the request holds a query slot, and a token
// of the heavy lane, and the estimated cost of its computations so far
// (query.Cost.Units).
type slotTicket struct {
	mu    sync.Mutex
	held  bool
	heavy bool
	spent int64
	// refused is the heavy lane's refusal (promote), kept: the request
	// gave its slot back, so nothing more of it may compute.
	refused error
	// leaveLine, when set, is called once, before the request waits for
	// the heavy lane (promote): a background refresh leaves the one-at-a-
	// time refresh line then (flight.go), which its wait would otherwise
	// hold for up to HeavyQueueWait while other questions' refreshes queue.
	leaveLine func()
}

// admitLazy lets the request in without a slot; see s.acquire.
func (s *server) admitLazy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tk := &slotTicket{}
		defer s.release(tk)
		next.ServeHTTP(w, r.WithContext(s.withTicket(r.Context(), tk)))
	})
}

// acquire takes a query slot for a lazily admitted request that has to
// compute (a no-op for one that already holds it, or that was admitted
// eagerly by s.admit): it waits up to Limits.QueueWait, then returns the
// 503 overloaded error.
func (s *server) acquire(r *http.Request) error {
	tk, _ := r.Context().Value(slotTicketKey{}).(*slotTicket)
	if tk == nil {
		return nil
	}
	return s.acquireTicket(r.Context(), tk)
}

// acquireTicket takes a slot of the cheap lane for tk unless it holds one.
func (s *server) acquireTicket(ctx context.Context, tk *slotTicket) error {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.refused != nil {
		return tk.refused
	}
	if tk.held {
		return nil
	}
	if err := s.takeSlot(ctx); err != nil {
		return err
	}
	tk.held = true
	return nil
}

// takeSlot takes one of the Limits.MaxConcurrent slots (the cheap lane,
// where every request starts), waiting up to Limits.QueueWait, or
// shedTarget behind a standing queue (shed.go); the caller releases it
// with <-s.slots.
func (s *server) takeSlot(ctx context.Context) error {
	start := time.Now()
	err := s.wait(ctx, s.slots, &s.queue, laneCheap, time.Time{})
	s.lanes.observe(laneCheap, time.Since(start), err)
	return err
}
