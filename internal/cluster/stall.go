package cluster

// The stall watchdog (docs/scale-out.md §2.4). nats.go's ordered consumer
// recovers on its own from a lost consumer (missed heartbeats, a deleted
// consumer, a reconnect) by creating the next one, but it retries that
// create under one name for as long as it fails, and its iterator's Next
// blocks meanwhile without an error. When the create placed the consumer
// on a node that has just died (nats-server marks a killed node offline
// only after 150 s, and places on it until its meta heartbeats lapse), the
// retries go to that node until it comes back: the mirror stops, silently
// (TestMirrorConsumerOnLostNode; a clean-clone CI run of
// TestClusterProcesses at 8ac4490). So while the mirror waits for a
// message, a watchdog compares its position with the changelog's last
// sequence; once the position has not moved for the stall timeout while
// the changelog holds a message beyond it, the mirror drops the consumer
// and starts again from the store's applied sequences with a new one
// (sketchd_mirror_restarts_total{reason="stalled"}).

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStallTimeout is how long the mirror waits without moving, while
// the changelog holds messages beyond its position, before it rewinds
// with a new consumer: longer than nats.go's own recovery from a lost
// consumer (two missed 5 s heartbeats, then a new consumer), so that the
// watchdog acts only when the library has not recovered.
const DefaultStallTimeout = 15 * time.Second

// stallChecks is how many times per stall timeout the watchdog looks.
const stallChecks = 5

// WithStallTimeout sets the stall timeout (DefaultStallTimeout when 0;
// negative turns the watchdog off).
func WithStallTimeout(d time.Duration) MirrorOption {
	return func(c *mirrorConfig) { c.stallTimeout = d }
}

// errStalled: the watchdog found the consumer stalled.
var errStalled = errors.New("cluster: mirror stalled")

// watchStall runs the watchdog of one consume until done closes: the
// returned channel closes when it finds the consumer stalled. waiting is
// true while consume waits for a message (an apply that takes long is not
// a stall). The goroutine is the mirror's (readers).
func (m *Mirror) watchStall(ctx context.Context, s jetstream.Stream, waiting *atomic.Bool, done <-chan struct{}) <-chan struct{} {
	stalled := make(chan struct{})
	if m.stallTimeout <= 0 {
		return stalled
	}
	every := m.stallTimeout / stallChecks
	m.readers.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last, since := m.position.Load(), time.Time{} // since: first seen stalled
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			at := m.position.Load()
			if at != last || !waiting.Load() {
				last, since = at, time.Time{}
				continue
			}
			head, err := m.readHead(ctx, s, every)
			switch {
			case err != nil: // unknown: neither a stall nor progress
				continue
			case head <= at:
				since = time.Time{}
				continue
			case since.IsZero():
				since = time.Now()
			}
			if time.Since(since) < m.stallTimeout || !m.unprocessed(ctx, s, at, every) {
				continue
			}
			m.restarts[restartStalled].Add(1)
			m.log.Warn("changelog mirror stalled; rewinding with a new consumer",
				"position", at, "head", head, "stalled_for", time.Since(since).Round(time.Millisecond))
			close(stalled)
			return
		}
	})
	return stalled
}

// readHead reads the changelog's last sequence (the stream leader
// answers), within bound, and raises the mirror's head to it (so
// sketchd_mirror_pending shows a stalled mirror's lag).
func (m *Mirror) readHead(ctx context.Context, s jetstream.Stream, bound time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	m.raiseHead(info.State.LastSeq)
	return info.State.LastSeq, nil
}

// unprocessed reports whether the changelog holds a message beyond
// sequence at (a direct get of the next one): the last sequence alone
// could be a gap (a removed message), which no consumer would deliver.
func (m *Mirror) unprocessed(ctx context.Context, s jetstream.Stream, at uint64, bound time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	msg, err := s.GetMsg(ctx, at+1, jetstream.WithGetMsgSubject(m.cl.Subjects()))
	return err == nil && msg.Sequence > at
}
