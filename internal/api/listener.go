package api

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConns is the default cap on open HTTP connections (see
// LimitListener): far below the usual 1024 file descriptors per process
// minus what Badger and NATS hold, far above what a query client needs.
const DefaultMaxConns = 512

// ConnLimiter is a listener that holds at most n accepted connections open
// at once, so that clients cannot exhaust the process's file descriptors
// (which Badger and NATS need too). When a new connection arrives at the
// cap, the connection idle the longest (kept alive between requests) is
// closed to make room; only when none is idle does the new one wait for a
// connection to close or to go idle. Without that, a load tool or a
// browser keeping its connections alive held every slot while its new
// connections waited in the kernel's backlog, unserved, until their
// requests timed out (docs/benchmarks.md: vegeta's 10 s timeouts at 1,000
// requests/s). Closing an idle keep-alive connection is allowed by HTTP/1.1
// (RFC 9112 §9.6); clients open another one (and retry an idempotent
// request that raced the close).
//
// Set the server's ConnState to the limiter's ConnState: it tells it which
// connections are idle.
type ConnLimiter struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	wentIdle  chan struct{} // a connection went idle while Accept waited

	mu   sync.Mutex
	idle map[*limitConn]time.Time // idle since

	idleClosed atomic.Uint64
}

// LimitListener returns a ConnLimiter over l holding at most n connections
// (n <= 0: DefaultMaxConns).
func LimitListener(l net.Listener, n int) *ConnLimiter {
	if n <= 0 {
		n = DefaultMaxConns
	}
	return &ConnLimiter{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}),
		wentIdle: make(chan struct{}, 1), idle: map[*limitConn]time.Time{}}
}

// Accept accepts the next connection, then makes room for it: a free slot,
// or the longest idle connection closed, or else it waits for one of them.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		default:
		}
		if l.closeLongestIdle() {
			continue
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		case <-l.wentIdle:
		case <-l.done:
			_ = c.Close()
			return nil, net.ErrClosed
		}
	}
}

// ConnState tracks which connections are idle; set it as the
// http.Server's ConnState.
func (l *ConnLimiter) ConnState(c net.Conn, s http.ConnState) {
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if s == http.StateIdle {
		l.idle[lc] = time.Now()
	} else {
		delete(l.idle, lc)
	}
	l.mu.Unlock()
	if s == http.StateIdle {
		select {
		case l.wentIdle <- struct{}{}:
		default:
		}
	}
}

// IdleClosed is the number of idle connections closed to make room.
func (l *ConnLimiter) IdleClosed() uint64 { return l.idleClosed.Load() }

// closeLongestIdle closes the connection idle the longest, if any: its
// Close frees its slot.
func (l *ConnLimiter) closeLongestIdle() bool {
	l.mu.Lock()
	var oldest *limitConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	if oldest != nil {
		delete(l.idle, oldest)
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	_ = oldest.Close()
	l.idleClosed.Add(1)
	return true
}

func (l *ConnLimiter) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	l    *ConnLimiter
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
