package ingest

// The status: what the API and the metrics see of a running stream. The
// runner's goroutines publish it as an immutable sketchd.StreamStatus,
// swapped atomically; Manager.Get and List, the metrics collector and Ready
// read it (or the parts' atomics) without taking any lock that ingestion
// holds, so a query never waits for ingestion, not even while Process is
// blocked on a full shard queue.
//
// Publishers, each after it changed something the status shows:
//
//   - the intake, after each Process batch (counters, watermark, open panes);
//   - the committer, after each tick (idle watermark, core drops) and each
//     commit attempt (committed watermark, last commit, error);
//   - the consumer, after each refresh of the JetStream consumer's info
//     (pending, ack floor: every 5 flush intervals).
//
// Freshness: the live fields (watermark, counters, open panes) are as of
// the last batch the intake processed, or the last tick; the committed
// fields as of the last commit; Pending and AckFloor at most 5 ×
// FlushInterval old; Dropped (core) as of the last publication. While
// ingestion is blocked (full shard queues, a paused intake), the intake and
// the committer do not publish, and the status stays as it was when they
// blocked: stale by the length of the block, never blocking its readers.
//
// Fields (statusBoard): mu serializes publishers (a leaf lock, held while
// building the snapshot only); cur is the snapshot; lastErr is written by
// the intake (a failed Process) and the committer (a failed commit; cleared
// by the next good one).

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sketchd/sketchd"
)

type statusBoard struct {
	mu      sync.Mutex
	cur     atomic.Pointer[sketchd.StreamStatus]
	lastErr atomic.Pointer[string]
}

// publishStatus builds the stream's status from the parts and makes it
// current.
func (r *runner) publishStatus() {
	r.status.mu.Lock()
	defer r.status.mu.Unlock()
	st := r.buildStatus()
	r.status.cur.Store(&st)
}

// currentStatus returns the last published status, with the partitions
// being restored marked uncovered as of now (coverage.go). Its
// Counters.Invalid map is shared: read it, do not modify it.
func (r *runner) currentStatus() sketchd.StreamStatus {
	var st sketchd.StreamStatus
	if len(r.siblings) > 0 {
		st = r.mergedStatus() // partitions.go
	} else {
		st = *r.status.cur.Load()
	}
	r.m.markUncovered(context.Background(), r.info, &st)
	return st
}

func (r *runner) buildStatus() sketchd.StreamStatus {
	agg := r.agg.Stats()
	s := sketchd.StreamStatus{
		ID:                 r.info.ID,
		Spec:               r.spec,
		Created:            r.info.Created,
		State:              "running",
		Alters:             r.info.Alters,
		Watermark:          agg.Watermark,
		MaxEventTime:       agg.MaxEventTime,
		CommittedWatermark: r.committer.committedWM.Load(),
		Counters:           agg.Counters,
		OpenPanes:          agg.OpenPanes,
		EvictedEarly:       agg.EvictedEarly,
		Pending:            r.consumer.numPending.Load(),
		AckFloor:           r.consumer.ackFloor.Load(),
		Dropped:            r.intake.dropped.Load(),
		Rollups:            r.rollupStatus(),
	}
	if sub := r.consumer.sub; sub != nil {
		if d, err := sub.Dropped(); err == nil {
			s.Dropped += uint64(d)
		}
	}
	if ns := r.committer.lastCommit.Load(); ns != 0 {
		s.LastCommit = time.Unix(0, ns).UTC()
	}
	s.Coverage = []sketchd.PartitionState{{Partition: max(r.part, 0), PositionSeq: r.committer.committedSeq.Load(),
		Watermark: s.CommittedWatermark, LastCommit: s.LastCommit}}
	if e := r.status.lastErr.Load(); e != nil {
		s.Error = *e
	}
	return s
}

// setErr records the stream's last error for the status and Ready.
func (r *runner) setErr(err error) {
	s := err.Error()
	r.status.lastErr.Store(&s)
}

// clearErr forgets it, after a good commit.
func (r *runner) clearErr() { r.status.lastErr.Store(nil) }

// lastErr returns the stream's last error; "" when none.
func (r *runner) lastErr() string {
	if e := r.status.lastErr.Load(); e != nil {
		return *e
	}
	return ""
}
