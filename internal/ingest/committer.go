package ingest

// The committer: every FlushInterval it advances an idle stream's
// watermark (Tick), takes a flush of the aggregator, commits it to the
// store, and acks the JetStream messages the commit covers. A failed commit
// keeps its flush for a retry (the next flush is folded into it), with
// exponential backoff; meanwhile nothing is acked, Ready fails and the
// intake gate is closed, so that the unacked input backs up in NATS rather
// than in memory.
//
// Goroutine: runCommitter, one per stream. It makes the final commit when
// the stream stops (after the intake has processed everything delivered).
//
// Fields (committerState): retry, last, failures, failSince, retryAt and
// acked belong to runCommitter (newRunner sets last before it starts);
// gate is shared with the intake, which waits on it; failing, commits,
// commitErrors, cycleSeconds, committedWM, lastCommit and retryPanes are
// written by runCommitter and read by the status, the metrics and Ready.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
)

type committerState struct {
	retry     *sketchd.Flush // a flush whose commit failed, held for a retry
	last      sketchd.Checkpoint
	failures  int       // consecutive failed commits
	failSince time.Time // first failure of the current run of failures
	retryAt   time.Time // no commit attempt before
	acked     jetstream.Msg

	gate gate // closed while commits fail

	failing      atomic.Bool   // the last commit failed: Ready reports it
	commits      atomic.Uint64 // commits that succeeded
	commitErrors atomic.Uint64
	cycleSeconds atomic.Uint64 // float64 bits: the last flush → commit → ack
	committedWM  atomic.Int64  // the watermark of the last commit
	committedSeq atomic.Uint64 // the JetStream sequence of the last commit
	lastCommit   atomic.Int64  // unix ns of the last commit
	retryPanes   atomic.Int64  // panes held for a commit retry
}

func (c *committerState) init() { c.committedWM.Store(sketchd.NoTime) }

// runCommitter is the committer's goroutine: a cycle every FlushInterval
// until the intake ends, then the final commit when stop asked for one.
// drain is done when the stop's deadline passes; it interrupts a blocked
// Tick, Flush or Commit.
func (r *runner) runCommitter(drain context.Context) error {
	t := time.NewTicker(r.m.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.intake.done:
			return r.finalCommit(drain)
		case <-drain.Done():
			return r.finalCommit(drain)
		case now := <-t.C:
			r.tick(drain, now)
		}
	}
}

// tick advances an idle stream's watermark and runs a cycle, unless a
// failed commit is backing off.
func (r *runner) tick(ctx context.Context, now time.Time) {
	defer r.publishStatus()
	if err := r.agg.Tick(ctx, now.UnixNano()); err != nil {
		return
	}
	if r.committer.retry != nil && now.Before(r.committer.retryAt) {
		return
	}
	_ = r.cycle(ctx) // logged and counted by cycle
}

// finalCommit runs the last cycle when stop asked for one.
func (r *runner) finalCommit(ctx context.Context) error {
	if !r.life.final.Load() {
		return nil
	}
	err := r.cycle(ctx)
	if err != nil && r.committer.retry != nil {
		err = fmt.Errorf("final commit of stream %q failed; its unacked JetStream messages will be redelivered: %w", r.spec.Name, err)
	}
	r.publishStatus()
	return err
}

// cycle takes a flush, commits it, and acks the JetStream messages it
// covers once the commit is durable.
func (r *runner) cycle(ctx context.Context) error {
	start := time.Now()
	f, err := r.takeFlush(ctx)
	if err != nil {
		return err
	}
	if r.nothingToCommit(f) {
		r.committer.retry = nil
		r.committer.retryPanes.Store(0)
		return nil
	}
	if err := r.commits.Commit(ctx, r.dataID, *f); err != nil {
		return r.commitFailed(f, err, start)
	}
	r.commitSucceeded(f, start)
	r.ack(ctx, f.Token)
	r.committer.cycleSeconds.Store(math.Float64bits(time.Since(start).Seconds()))
	return nil
}

// takeFlush flushes the aggregator, folding the flush into the one held
// for a retry, if any.
func (r *runner) takeFlush(ctx context.Context) (*sketchd.Flush, error) {
	f, err := r.agg.Flush(ctx)
	if err != nil {
		return nil, err
	}
	if held := r.committer.retry; held != nil {
		held.Absorb(f)
		f = held
	}
	return f, nil
}

// nothingToCommit reports a flush with no pane and the checkpoint already
// committed.
func (r *runner) nothingToCommit(f *sketchd.Flush) bool {
	return len(f.Panes) == 0 && reflect.DeepEqual(f.Checkpoint, r.committer.last)
}

// commitFailed holds f for a retry after a backoff, and on the first
// failure of a run closes the intake gate and fails Ready.
func (r *runner) commitFailed(f *sketchd.Flush, err error, start time.Time) error {
	c := &r.committer
	c.retry = f
	c.retryPanes.Store(int64(len(f.Panes)))
	c.commitErrors.Add(1)
	r.setErr(err)
	c.failures++
	if c.failures == 1 {
		c.failSince = start
		c.gate.pause()
		c.failing.Store(true)
	}
	opts := r.m.opts
	backoff := min(opts.FlushInterval<<min(c.failures-1, 20), max(opts.MaxCommitBackoff, opts.FlushInterval))
	c.retryAt = start.Add(backoff)
	r.log.Log(context.Background(), commitFailureLevel(err), "commit failed: ingestion paused, nothing acked; retrying",
		"err", err, "attempt", c.failures, "failing_for", time.Since(c.failSince).Round(time.Millisecond),
		"retry_in", backoff, "uncommitted_panes", len(f.Panes), "position_seq", sketchd.PositionSeq(f.Checkpoint.Position))
	return fmt.Errorf("commit: %w", err)
}

// commitFailureLevel is the level of a failed commit's log line: Info for
// one the cluster's changelog fenced (another instance claimed the
// partition: a hand-off or a failover; the partition is dropped here
// without a commit, and its release is logged at Warn), Error otherwise.
func commitFailureLevel(err error) slog.Level {
	if errors.Is(err, cluster.ErrFenced) {
		return slog.LevelInfo
	}
	return slog.LevelError
}

// commitSucceeded records a durable commit, tells the aggregator, and
// reopens the intake gate.
func (r *runner) commitSucceeded(f *sketchd.Flush, start time.Time) {
	c := &r.committer
	if c.failures > 0 {
		r.log.Info("commit succeeded again: ingestion resumed", "failed_attempts", c.failures,
			"outage", time.Since(c.failSince).Round(time.Millisecond), "panes", len(f.Panes))
		c.failures = 0
	}
	c.retry = nil
	c.retryPanes.Store(0)
	c.last = f.Checkpoint
	// The commit's time first: a status that shows anything of this
	// commit (its counters, its watermark) names it, so a query keyed by
	// the status's last commit (the query caches, the tail memo) never
	// takes the state before it for this one (TestEmitMatchesAPI saw the
	// new late count with the previous commit's time, and a memo of the
	// previous tail).
	c.lastCommit.Store(time.Now().UnixNano())
	r.agg.Committed(f)
	c.committedWM.Store(f.Checkpoint.Watermark)
	c.committedSeq.Store(sketchd.PositionSeq(f.Checkpoint.Position))
	c.commits.Add(1)
	r.clearErr()
	c.failing.Store(false)
	c.gate.resume()
}

// ack acks the last JetStream message a commit covers (AckAll: and every
// one before it).
func (r *runner) ack(ctx context.Context, token any) {
	t, ok := token.(ackToken)
	if !ok || t.msg == nil {
		return // core NATS, or nothing received yet
	}
	c := &r.committer
	switch {
	case t.msg == c.acked:
		// A commit with no new message (an idle stream's watermark
		// advance): its last message is acked already.
		return
	case t.epoch != r.consumer.epoch.Load():
		// The consumer was recreated past this message since.
		r.log.Debug("not acking a message of a superseded consumer", "epoch", t.epoch)
		return
	}
	// Dead letters published before the covered messages must reach the
	// server before those messages are acked: a round trip to it.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := r.nc.FlushWithContext(fctx); err != nil {
		r.log.Warn("dead letters not confirmed by NATS before the ack", "err", err)
	}
	cancel()
	switch err := t.msg.Ack(); {
	case err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd):
		c.acked = t.msg
	default:
		// Not fatal: the messages are redelivered and ignored as already
		// contained in the checkpoint.
		r.log.Warn("ack failed", "err", err)
	}
	if r.m.opts.afterAck != nil {
		r.m.opts.afterAck()
	}
}

// gate pauses the intake while commits fail: the intake waits before each
// batch while it is closed.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // nil = open; else closed when the gate opens
}

// pause closes the gate.
func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
}

// resume opens the gate, releasing the intake.
func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

// wait blocks while the gate is closed, until it opens or ctx is done.
func (g *gate) wait(ctx context.Context) {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}
