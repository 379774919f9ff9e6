package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
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
func (s *server) answerCached(w http.ResponseWriter, r *http.Request, key, question string, cacheable bool, compute func(context.Context) ([]byte, error)) {
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
// Stale while revalidating (HTTP's stale-while-revalidate, RFC 5861;
// Varnish's grace): after a commit every answer's key changes at once, and
// at load the recomputation of every question asked (each merging the
// open panes of every key) is a burst that took both cores for 50-250 ms
// after each commit, stalling every request, even those that compute
// nothing (docs/operations.md). So when the latest answer of the same
// question (key at an earlier commit) is at most Limits.StaleAnswerAge
// old, it is served, with stale true, instead of waiting: to a request
// that would wait for another's computation; and to the request that
// would lead one while other computations are under way (busy), whose
// computation then runs in the background, one at a time (refresh). A
// lone client, or a quiet server, always gets the newest answer. The
// answer's own as_of names its commit.
func (s *server) answer(r *http.Request, key, question string, cacheable bool, compute func(context.Context) ([]byte, error)) (body []byte, stale bool, err error) {
	if !cacheable {
		body, err = s.computeAdmitted(r, compute)
		return body, false, err
	}
	for {
		if body, ok := s.answers.get(key); ok {
			return body, false, nil
		}
		fl, lead, busy := s.flights.join(key)
		if !lead || busy {
			if old, ok := s.answers.stale(question, s.limits.StaleAnswerAge); ok && (!lead || s.refresh(r, key, question, fl, compute)) {
				s.met.staleAnswers.Inc()
				return old, true, nil
			}
		}
		if lead {
			body, err = s.lead(r, key, question, fl, compute)
			return body, false, err
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
func (s *server) lead(r *http.Request, key, question string, fl *answerFlight, compute func(context.Context) ([]byte, error)) ([]byte, error) {
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

// refresh computes the answer of key for the flight fl in the background,
// after the request that started it has been answered stale: one refresh
// at a time (s.refreshing), each with a query slot and its own lane ticket
// (lanes.go), under the request's context values without its cancellation,
// bounded by Limits.Timeout and ended by Handler.Close. A refresh that
// turns heavy and must wait for the heavy lane leaves the line first
// (slotTicket.leaveLine): the heavy lane's tokens bound it from then on,
// and the cheap questions' refreshes go on meanwhile. A refresh that
// fails leaves the flight's waiters its error; the next request of the
// question computes again. It reports false, starting nothing, once the
// Handler is closed: the caller computes the answer itself.
func (s *server) refresh(r *http.Request, key, question string, fl *answerFlight, compute func(context.Context) ([]byte, error)) bool {
	return s.bg.start(func(bg context.Context) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.limits.Timeout)
		defer cancel()
		defer context.AfterFunc(bg, cancel)()
		var body []byte
		err := context.Canceled
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("answer refresh panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			if err == nil {
				s.answers.put(key, question, body)
			}
			s.flights.finish(key, fl, body, err)
		}()
		select {
		case s.refreshing <- struct{}{}:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		var left sync.Once
		leave := func() { left.Do(func() { <-s.refreshing }) }
		defer leave()
		tk := &slotTicket{leaveLine: leave} // its own: the request's was released when it was answered
		tctx := s.withTicket(ctx, tk)
		if err = s.acquireTicket(tctx, tk); err != nil {
			return
		}
		defer s.release(tk)
		body, err = compute(tctx)
	})
}

// background owns the goroutines of the refreshes: each runs under ctx,
// which close cancels, and is counted in wg, which close waits for; once
// closed, none starts (thanos's one owner per goroutine, as run.Group).
type background struct {
	ctx    context.Context
	stop   context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// open readies b to start goroutines.
func (b *background) open() { b.ctx, b.stop = context.WithCancel(context.Background()) }

// start runs f(ctx) in a goroutine, and reports whether it did: not once
// closed (or never opened).
func (b *background) start(f func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.ctx == nil {
		return false
	}
	b.wg.Go(func() { f(b.ctx) })
	return true
}

// close cancels the running goroutines and waits for them.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if b.stop != nil {
		b.stop()
	}
	b.wg.Wait()
}

// computeAdmitted takes a query slot (s.acquire) and runs compute.
func (s *server) computeAdmitted(r *http.Request, compute func(context.Context) ([]byte, error)) ([]byte, error) {
	if err := s.acquire(r); err != nil {
		return nil, err
	}
	return compute(r.Context())
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
// call finish), and whether other flights are under way (busy).
func (f *answerFlights) join(key string) (fl *answerFlight, lead, busy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return fl, false, len(f.m) > 1
	}
	if f.m == nil {
		f.m = map[string]*answerFlight{}
	}
	busy = len(f.m) > 0
	fl = &answerFlight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true, busy
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
