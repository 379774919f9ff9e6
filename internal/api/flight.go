package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// answerFlights makes the requests that miss the answer cache with the same
// key wait for one computation instead of each computing it: after a commit
// every cached answer is stale at once, and at load a popular question
// arrives many times before its first computation ends (each holding a
// query slot and decoding the same panes). The waiters hold no slot.
type answerFlights struct {
	mu sync.Mutex
	m  map[string]*answerFlight
}

// answerFlight is one computation of an answer; done closes when body or
// err is set.
type answerFlight struct {
	done chan struct{}
	body []byte
	err  error
}

// answerCached writes the answer of key (s.answer), or its error.
func (s *server) answerCached(w http.ResponseWriter, r *http.Request, key string, cacheable bool, compute func() ([]byte, error)) {
	body, err := s.answer(r, key, cacheable, compute)
	s.writeAnswer(w, r, body, err)
}

// answer is the answer of key from the answer cache, from a computation of
// the same key already under way, or from compute (run after taking a
// query slot), which it then caches. Without a key (cacheable false) it
// only takes the slot and computes.
func (s *server) answer(r *http.Request, key string, cacheable bool, compute func() ([]byte, error)) ([]byte, error) {
	if !cacheable {
		return s.computeAdmitted(r, compute)
	}
	if body, ok := s.answers.get(key); ok {
		return body, nil
	}
	fl, lead := s.flights.join(key)
	if !lead {
		select {
		case <-fl.done:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		if !leaderOnlyFailure(fl.err) {
			return fl.body, fl.err
		}
		// The leader was shed or its client went away: compute alone.
		body, err := s.computeAdmitted(r, compute)
		if err == nil {
			s.answers.put(key, body)
		}
		return body, err
	}
	finished := false
	defer func() { // compute panicked: the waiters compute alone
		if !finished {
			s.flights.finish(key, fl, nil, context.Canceled)
		}
	}()
	body, err := s.computeAdmitted(r, compute)
	if err == nil {
		s.answers.put(key, body)
	}
	s.flights.finish(key, fl, body, err)
	finished = true
	return body, err
}

// computeAdmitted takes a query slot (s.acquire) and runs compute.
func (s *server) computeAdmitted(r *http.Request, compute func() ([]byte, error)) ([]byte, error) {
	if err := s.acquire(r); err != nil {
		return nil, err
	}
	return compute()
}

func (s *server) writeAnswer(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeBody(w, body)
}

// leaderOnlyFailure reports whether a leader's error belongs to the leader's
// request rather than to the question: its deadline or cancellation, or no
// slot for it. Waiters compute again after those; any other error (a
// limit, a bad range, a store failure) is the question's and is shared.
func leaderOnlyFailure(err error) bool {
	var he *httpError
	return err != nil && errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &he) && he.code == codeOverloaded)
}

// join returns the flight of key and whether the caller leads it (and must
// call finish).
func (f *answerFlights) join(key string) (*answerFlight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return fl, false
	}
	if f.m == nil {
		f.m = map[string]*answerFlight{}
	}
	fl := &answerFlight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

// finish publishes the leader's outcome to the waiters and forgets the
// flight (later requests find the answer in the cache).
func (f *answerFlights) finish(key string, fl *answerFlight, body []byte, err error) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
	fl.body, fl.err = body, err
	close(fl.done)
}
