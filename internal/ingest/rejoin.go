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
// Goroutines and locks: the rejoin runs on the redial goroutine that
// delivers the new connection (ConnState.OnReplaced, after the
// single-node streams moved). It holds clusterMu throughout, so Stop
// (stopCluster) waits for it; Stop cancels m.ctx first, which cuts the
// join and its retries short, and then leaves whichever mode is current.

import (
	"context"
	"time"
)

// rejoinCluster leaves the cluster mode bound to the closed connection
// and joins again on the current one, retrying (1 s to 30 s apart) until
// it has joined or the Manager stops. A no-op on a single node.
func (m *Manager) rejoinCluster() {
	m.clusterMu.Lock()
	defer m.clusterMu.Unlock()
	old := m.cluster.Load()
	if old == nil || m.ctx.Err() != nil {
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
		err := m.joinAgain(old)
		if err == nil {
			m.log.Info("joined the cluster again on the new NATS connection: registry, announcement, mirrors and partition controllers re-opened",
				"cluster", old.opts.Name, "streams", m.cluster.Load().streamCount(), "attempts", attempt,
				"took", time.Since(began).Round(time.Millisecond))
			return
		}
		if m.ctx.Err() != nil {
			return
		}
		m.log.Warn("joining the cluster again failed; retrying", "cluster", old.opts.Name, "err", err, "attempt", attempt, "backoff", backoff)
		sleepCtx(m.ctx, backoff)
		if m.ctx.Err() != nil {
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// joinAgain opens a new mode with old's options on the current
// connection, makes it the Manager's, and starts it (the registry's
// streams applied here, no configured streams registered again: the
// registry already holds them, or someone deleted them since). A mode
// that fails to start is left again and stays the Manager's, marked
// left (not ready), until an attempt succeeds.
func (m *Manager) joinAgain(old *clusterMode) error {
	ctx, cancel := context.WithTimeout(m.ctx, time.Minute)
	defer cancel()
	c, err := m.openCluster(ctx, old.opts, old.prom, old.local)
	if err != nil {
		return err
	}
	c.inheritCreated(old)
	m.cluster.Store(c)
	if err := m.startCluster(ctx, c, nil); err != nil {
		c.leave(ctx, false, releaseShutdown)
		c.left.Store(true)
		return err
	}
	return nil
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
