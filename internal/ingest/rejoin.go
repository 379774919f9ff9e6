package ingest

// Rejoin: when the server closes the NATS connection for good and
// redial.go replaces it, everything cluster mode opened on the old
// connection is dead with it: the registry's watch, the announcement, every
// stream's mirror and changelog, the owned partitions' consumers and
// writers. Rather than move each of them, the Manager leaves the cluster
// with the old mode and joins it again on the new connection through the
// path a boot takes (openCluster, startCluster).
//
// Ordering: the old mode is left completely (its controllers stopped, every
// owned partition dropped without a commit, as a crash would, since the
// closed connection can carry no commit) before the new mode claims
// anything, so this instance never runs two owners of a partition. The new
// mode's controllers wait for their first discovery round like a booting
// instance, claim through the changelog's fence (a partition another
// instance claimed meanwhile is fenced there, not doubled), and resume each
// partition from the checkpoint the store holds; its mirrors rewind from
// the store's applied sequences. What the old owners had not committed was
// not acked either: JetStream redelivers it to the new durables.
//
// A second close while a join is under way: each join attempt runs in a
// context that ends as soon as the connection current when it began
// closes (whileOpen), so it gives up at once
// (a registry watch whose initial values never come would otherwise hold
// it for its whole minute) and leaves what it opened. The rejoin then
// returns instead of retrying: the close started a redial, whose new
// connection's rebind runs the next rejoin, leaving and joining on the
// newest connection. A retry's backoff ends the same way.
//
// Goroutines and locks: the rejoin runs on the redial goroutine that
// delivers the new connection (ConnState.OnReplaced, after the
// single-node streams moved). It holds clusterMu throughout, so Stop
// (stopCluster) waits for it, and so does the rejoin of a connection
// that replaced this one's meanwhile (on that connection's redial
// goroutine): no two joins run at once, and each leaves the mode before
// the next opens one. Stop cancels m.ctx first, which cuts the join and
// its retries short, and then leaves whichever mode is current. Each
// join attempt and backoff owns one goroutine watching its connection
// (whileOpen), ended with the attempt.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// errConnClosed ends a join, or a retry's wait, whose NATS connection
// closed: a newer connection's rejoin takes over.
var errConnClosed = errors.New("its NATS connection closed")

// rejoinCluster leaves the cluster mode bound to the closed connection
// and joins again on nc, the connection rebind delivered, retrying (1 s to
// 30 s apart) until it has joined, the Manager stops, or nc closes (the
// next connection's rejoin joins then). A no-op on a single node, and when
// nc is no longer the current connection by the time this rejoin holds
// clusterMu (a newer connection's rejoin follows, or ran).
func (m *Manager) rejoinCluster(nc *nats.Conn) {
	m.clusterMu.Lock()
	defer m.clusterMu.Unlock()
	old := m.cluster.Load()
	if old == nil || m.ctx.Err() != nil || m.conn.Current() != nc {
		return
	}
	began := time.Now()
	streams := old.streamCount()
	old.left.Store(true)
	lctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	old.leave(lctx, false, releaseShutdown)
	cancel()
	m.log.Info("left the cluster: the NATS connection was replaced", "cluster", old.opts.Name, "streams", streams)
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := m.joinAgain(old, nc)
		if err == nil {
			m.log.Info("joined the cluster again on the new NATS connection: registry, announcement, mirrors and partition controllers re-opened",
				"cluster", old.opts.Name, "streams", m.cluster.Load().streamCount(), "attempts", attempt,
				"took", time.Since(began).Round(time.Millisecond))
			return
		}
		if m.ctx.Err() != nil {
			return
		}
		if !nc.IsClosed() {
			m.log.Warn("joining the cluster again failed; retrying", "cluster", old.opts.Name, "err", err, "attempt", attempt, "backoff", backoff)
			m.backoffOn(nc, backoff)
		}
		if m.ctx.Err() != nil {
			return
		}
		if nc.IsClosed() {
			m.log.Warn("joining the cluster again stopped: its NATS connection closed too; the next connection joins",
				"cluster", old.opts.Name, "err", err, "attempt", attempt, "took", time.Since(began).Round(time.Millisecond))
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// backoffOn waits d, or less when the Manager stops or nc closes
// meanwhile (a newer connection's rejoin takes over then).
func (m *Manager) backoffOn(nc *nats.Conn, d time.Duration) {
	ctx, cancel := whileOpen(m.ctx, nc)
	defer cancel()
	sleepCtx(ctx, d)
}

// joinAgain opens a new mode with old's options on nc, makes it the
// Manager's, and starts it (the registry's streams applied here, no
// configured streams registered again: the registry already holds them,
// or someone deleted them since), within a minute and while nc is open.
// A mode that fails to start is left again and stays the Manager's,
// marked left (not ready), until an attempt succeeds.
func (m *Manager) joinAgain(old *clusterMode, nc *nats.Conn) error {
	octx, cancel := whileOpen(m.ctx, nc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(octx, time.Minute)
	defer cancelT()
	c, err := m.openCluster(ctx, old.opts, old.prom, old.local)
	if err != nil {
		return joinError(ctx, err)
	}
	c.inheritCreated(old)
	m.cluster.Store(c)
	if err := m.startCluster(ctx, c, nil); err != nil {
		c.left.Store(true)
		lctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		defer cancel()
		c.leave(lctx, false, releaseShutdown)
		return joinError(ctx, err)
	}
	return nil
}

// joinError is err, with the reason ctx ended when that was the join's
// connection closing.
func joinError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errConnClosed) && !errors.Is(err, errConnClosed) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// whileOpen returns a context that ends with parent or as soon as nc
// closes (its cause errConnClosed). Its goroutine watches nc until the
// context ends: call cancel when done.
func whileOpen(parent context.Context, nc *nats.Conn) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	closed := nc.StatusChanged(nats.CLOSED)
	if nc.IsClosed() { // closed before the listener was registered
		cancel(errConnClosed)
	}
	go func() {
		defer nc.RemoveStatusListener(closed)
		select {
		case <-closed:
			cancel(errConnClosed)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// streamCount is the number of cluster streams the mode runs.
func (c *clusterMode) streamCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// inheritCreated carries over the registry revisions old created, so
// that this instance still creates their changelogs without waiting for
// another to.
func (c *clusterMode) inheritCreated(old *clusterMode) {
	old.mu.Lock()
	defer old.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, rev := range old.created {
		c.created[n] = rev
	}
}
