package api

import (
	"net"
	"sync"
)

// DefaultMaxConns is the default cap on open HTTP connections (see
// LimitListener): far below the usual 1024 file descriptors per process
// minus what Badger and NATS hold, far above what a query client needs.
const DefaultMaxConns = 512

// LimitListener returns a listener that holds at most n accepted
// connections open at once (n <= 0: DefaultMaxConns). Past it, Accept
// waits for one to close, and new connections wait in the kernel's
// backlog, instead of exhausting the process's file descriptors (which
// Badger and NATS need too). Closing the listener ends a waiting Accept.
func LimitListener(l net.Listener, n int) net.Listener {
	if n <= 0 {
		n = DefaultMaxConns
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
