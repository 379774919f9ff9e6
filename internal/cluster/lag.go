package cluster

// How far this instance's copy of each partition may lag the changelog
// (docs/scale-out.md §2.5, `mirror_pending`). The mirror reads every
// partition in one sequence, so what it has not read yet could be any
// partition's. A partition's last message is always its checkpoint
// record (every batch ends with it), so the sequence of that record,
// read directly (ProbeTails), bounds what is left of the partition: none
// once the mirror has processed past it. Probing is needed only while the
// mirror lags; until a probe covers the changelog's head, the stream's
// whole unread range is the bound.

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Pending is how many changelog sequences partition p may still have to
// be applied here, an upper bound on its messages as of the mirror's last
// read and probe: 0 for a partition held (owned) here, whose owner writes
// the store itself; else the sequences from the mirror's position up to
// p's last known record, plus those beyond the last probe that the
// mirror has not processed (they may be any partition's), at most the
// stream's figure (sketchd_mirror_pending). So it is 0 once the mirror
// has processed past p's last record and a probe covers what it knows of
// the changelog. Safe from any goroutine.
func (m *Mirror) Pending(p int) uint64 {
	if p < 0 || p >= len(m.held) || m.held[p].Load() {
		return 0
	}
	at, head := m.position.Load(), m.head.Load()
	if head <= at {
		return 0
	}
	m.ownMu.Lock()
	tail, probed := max(m.tails[p], m.owners[p].seq), m.probedHead
	m.ownMu.Unlock()
	var known, beyond uint64
	if tail > at {
		known = tail - at // p's records known, not processed yet
	}
	if from := max(probed, at); head > from {
		beyond = head - from // no probe has looked there: any partition's
	}
	return min(known+beyond, head-at)
}

// Lagging reports whether the mirror knows of changelog sequences it has
// not processed that no probe has covered yet: then ProbeTails makes
// Pending exact per partition.
func (m *Mirror) Lagging() bool {
	head := m.head.Load()
	m.ownMu.Lock()
	probed := m.probedHead
	m.ownMu.Unlock()
	return head > m.position.Load() && probed < head
}

// ProbeTails reads the changelog's last sequence and each partition's
// last checkpoint record's sequence (one stream info and one direct get
// per partition). Safe from any goroutine, concurrently with the mirror.
func (m *Mirror) ProbeTails(ctx context.Context) error {
	s, err := m.js.Stream(ctx, m.cl.Name())
	if err != nil {
		return fmt.Errorf("cluster: probe of %s: %w", m.cl.Name(), err)
	}
	head := s.CachedInfo().State.LastSeq // read first: the gets see every record up to it
	tails := make([]uint64, len(m.sids))
	for p := range m.sids {
		msg, err := lastForSubject(ctx, s, m.cl.CheckpointSubject(p))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return fmt.Errorf("cluster: probe of %s, partition %d: %w", m.cl.Name(), p, err)
		default:
			tails[p] = msg.Sequence
		}
	}
	m.raiseHead(head)
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	m.tails, m.probedHead = tails, head
	return nil
}

// raiseHead raises the mirror's idea of the changelog's last sequence to
// head (never lowers it).
func (m *Mirror) raiseHead(head uint64) {
	for {
		h := m.head.Load()
		if head <= h || m.head.CompareAndSwap(h, head) {
			return
		}
	}
}
