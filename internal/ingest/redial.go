package ingest

// Redial: a NATS connection that the server closes for good (a protocol
// error such as "maximum control line exceeded", which nats.go does not
// reconnect from) is replaced by a new one, dialled with the same options
// and backoff until it succeeds or Shutdown is called. Whoever holds the
// connection subscribes to replacements with OnReplaced (the Manager
// restarts its streams on the new connection); Current returns the live
// one. While no connection is up, ConnState.Connected is false and
// readiness says why.
//
// Goroutines: at most one redial loop dials at a time (started by the
// closed handler, owned by redialState, ended by success or Shutdown). A
// loop that succeeded runs the OnReplaced listeners after it stopped
// counting as running, so the next close can start the next loop while
// they run: listeners of two connections can overlap (Manager.rebind
// takes only the current one).

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type redialState struct {
	opts ConnOptions
	log  *slog.Logger
	cur  atomic.Pointer[nats.Conn]

	mu        sync.Mutex
	running   bool // a redial loop runs (mu)
	shutdown  bool // no more redials (mu)
	listeners []func(*nats.Conn)
	wake      chan struct{} // closed by Shutdown: ends a redial's wait
	redials   atomic.Uint64 // connections replaced
}

func (r *redialState) init(opts ConnOptions, log *slog.Logger) {
	r.opts, r.log, r.wake = opts, log, make(chan struct{})
}

// Current returns the live connection (the last one dialled).
func (s *ConnState) Current() *nats.Conn { return s.redial.cur.Load() }

// Redials counts connections replaced after the server closed one.
func (s *ConnState) Redials() uint64 { return s.redial.redials.Load() }

// OnReplaced registers f to run (on the redial goroutine) with each new
// connection that replaces a closed one.
func (s *ConnState) OnReplaced(f func(*nats.Conn)) {
	s.redial.mu.Lock()
	defer s.redial.mu.Unlock()
	s.redial.listeners = append(s.redial.listeners, f)
}

// Shutdown stops redialling: call it before closing or draining the
// current connection for good. It is idempotent.
func (s *ConnState) Shutdown() {
	r := &s.redial
	r.mu.Lock()
	if !r.shutdown {
		r.shutdown = true
		if r.wake != nil {
			close(r.wake)
		}
	}
	r.mu.Unlock()
}

// start runs a redial loop for the closed connection old, unless one runs
// or Shutdown was called, or old is not the current connection.
func (r *redialState) start(st *ConnState, old *nats.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || r.shutdown || r.wake == nil || r.cur.Load() != old {
		return
	}
	r.running = true
	go r.loop(st)
}

func (r *redialState) loop(st *ConnState) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := dial(r.opts, st, r.log)
		r.mu.Lock()
		if r.shutdown {
			r.running = false
			r.mu.Unlock()
			if nc != nil {
				nc.Close()
			}
			return
		}
		if err == nil {
			r.cur.Store(nc)
			r.running = false
			listeners := append([]func(*nats.Conn){}, r.listeners...)
			r.mu.Unlock()
			r.redials.Add(1)
			st.up(time.Now())
			r.log.Info("NATS connection replaced", "url", nc.ConnectedUrlRedacted(), "attempts", attempt)
			for _, f := range listeners {
				f(nc)
			}
			return
		}
		r.mu.Unlock()
		r.log.Warn("NATS redial failed; retrying", "err", err, "attempt", attempt, "backoff", backoff)
		select {
		case <-r.wake:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
