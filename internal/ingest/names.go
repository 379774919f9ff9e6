package ingest

import "sync"

// nameLocks serializes the lifecycle operations (create, delete, alter, a
// retried start, a restart on a new connection) of one stream name, so a
// name's runner is stopped completely before the name can be used again,
// and no runner outlives its stream. Different names proceed in parallel.
// A name's lock is held while the operation talks to NATS and the store;
// it is never taken while m.mu is held (m.mu is a leaf below it).
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	mu   sync.Mutex
	refs int // holders and waiters (nameLocks.mu)
}

// lock locks name and returns its unlock.
func (l *nameLocks) lock(name string) (unlock func()) {
	l.mu.Lock()
	nl := l.m[name]
	if nl == nil {
		nl = &nameLock{}
		l.m[name] = nl
	}
	nl.refs++
	l.mu.Unlock()
	nl.mu.Lock()
	return func() {
		nl.mu.Unlock()
		l.mu.Lock()
		if nl.refs--; nl.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
}
