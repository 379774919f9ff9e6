package api

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Answers of the answer cache are served without a query slot: a hit costs
// microseconds, and making it wait behind the queries that compute (or shed
// it with 503 when they are slow) is what made the cache useless at load.
// Routes that can answer from the cache (aggregate and multi-aggregate
// queries) are admitted lazily: admitLazy puts a ticket in the request's
// context and the handler takes a slot with s.acquire only when it has to
// compute; the slot is released when the handler returns.

type slotTicketKey struct{}

// slotTicket records whether the request holds a query slot.
type slotTicket struct{ held bool }

// admitLazy lets the request in without a slot; see s.acquire.
func (s *server) admitLazy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tk := &slotTicket{}
		defer func() {
			if tk.held {
				<-s.slots
			}
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), slotTicketKey{}, tk)))
	})
}

// acquire takes a query slot for a lazily admitted request that has to
// compute (a no-op for one that already holds it, or that was admitted
// eagerly by s.admit): it waits up to Limits.QueueWait, then returns the
// 503 overloaded error.
func (s *server) acquire(r *http.Request) error {
	tk, _ := r.Context().Value(slotTicketKey{}).(*slotTicket)
	if tk == nil || tk.held {
		return nil
	}
	if err := s.takeSlot(r.Context()); err != nil {
		return err
	}
	tk.held = true
	return nil
}

// takeSlot takes one of the Limits.MaxConcurrent slots, waiting up to
// Limits.QueueWait, or shedTarget behind a standing queue (shed.go); the
// caller releases it with <-s.slots.
func (s *server) takeSlot(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	wait := s.queueWait(s.queue.enter(time.Now()))
	defer s.queue.leave()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-t.C:
		return &httpError{code: codeOverloaded,
			detail: fmt.Sprintf("%d queries are running and none finished within %s; retry later", cap(s.slots), wait)}
	case <-ctx.Done():
		return ctx.Err()
	}
}
