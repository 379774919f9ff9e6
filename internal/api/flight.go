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

// hdrStale marks an answer served from an older commit while another
// request computes the newest (answer).
const hdrStale = "Sketchd-Stale"

// answerCached writes the answer of key (s.answer), or its error.
func (s *server) answerCached(w http.ResponseWriter, r *http.Request, key, question string, cacheable bool, compute func() ([]byte, error)) {
	body, stale, err := s.answer(r, key, question, cacheable, compute)
	if stale {
		w.Header().Set(hdrStale, "true")
	}
	s.writeAnswer(w, r, body, err)
}

// answer is the answer of key from the answer cache, from a computation of
// the same key already under way, or from compute (run after taking a
// query slot), which it then caches. Without a key (cacheable false) it
// only takes the slot and computes. When the request leading a
// computation ends first (its client left, or its deadline passed), one
// of the waiters leads a new one; when it was shed (503 overloaded), its
// waiters are too: each computing alone was a herd that an overloaded
// server shed anyway.
//
// A request that would wait for another's computation gets instead, with
// stale true, the latest answer of the same question (key at an earlier
// commit) if it is at most Limits.StaleAnswerAge old: HTTP's
// stale-while-revalidate for collapsed requests (Varnish's grace). After a
// commit every answer's key changes at once, and the herd of a popular
// question waited for its first computation (docs/operations.md). The
// answer's own as_of names its commit. The request that leads the
// computation always gets the newest answer, so a lone client never sees
// an answer older than its previous one.
func (s *server) answer(r *http.Request, key, question string, cacheable bool, compute func() ([]byte, error)) (body []byte, stale bool, err error) {
	if !cacheable {
		body, err = s.computeAdmitted(r, compute)
		return body, false, err
	}
	for {
		if body, ok := s.answers.get(key); ok {
			return body, false, nil
		}
		fl, lead := s.flights.join(key)
		if lead {
			body, err = s.lead(r, key, question, fl, compute)
			return body, false, err
		}
		if body, ok := s.answers.stale(question, s.limits.StaleAnswerAge); ok {
			s.met.staleAnswers.Inc()
			return body, true, nil
		}
		select {
		case <-fl.done:
		case <-r.Context().Done():
			return nil, false, r.Context().Err()
		}
		if !leaderOnlyFailure(fl.err) {
			return fl.body, false, fl.err
		}
	}
}

// lead computes the answer of key for the flight fl and its waiters.
func (s *server) lead(r *http.Request, key, question string, fl *answerFlight, compute func() ([]byte, error)) ([]byte, error) {
	finished := false
	defer func() { // compute panicked: the waiters compute alone
		if !finished {
			s.flights.finish(key, fl, nil, context.Canceled)
		}
	}()
	body, err := s.computeAdmitted(r, compute)
	if err == nil {
		s.answers.put(key, question, body)
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
// request rather than to the question: its deadline or cancellation.
// Waiters join a new computation after those; any other error (a limit, a
// bad range, a store failure, 503 overloaded) is shared.
func leaderOnlyFailure(err error) bool {
	return err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
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
