package emit

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
)

// emitter publishes one stream's targets. Fields: id, spec and targets are
// fixed at start; latest is written by Service.sync and read by run;
// targets' state belongs to run, their counters are atomics read by the
// status and the metrics.
type emitter struct {
	s       *Service
	id      uint32
	spec    sketchd.Stream
	log     *slog.Logger
	targets []*target
	latest  atomic.Pointer[sketchd.StreamStatus]
	wake    chan struct{} // cap 1: a new status
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
}

// start starts st's emitter goroutine.
func (s *Service) start(ctx context.Context, st *sketchd.StreamStatus) *emitter {
	ctx, cancel := context.WithCancel(ctx)
	e := &emitter{s: s, id: st.ID, spec: st.Spec, cancel: cancel, done: make(chan struct{}),
		wake: make(chan struct{}, 1), log: s.log.With("stream", st.Spec.Name)}
	for i := range st.Spec.Emit {
		e.targets = append(e.targets, newTarget(e, i))
	}
	go e.run(ctx)
	return e
}

// offer hands the emitter its stream's latest status.
func (e *emitter) offer(st *sketchd.StreamStatus) {
	e.latest.Store(st)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// run publishes, for each new status, what each target has to publish.
func (e *emitter) run(ctx context.Context) {
	defer close(e.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		}
		st := e.latest.Load()
		for _, t := range e.targets {
			if ctx.Err() != nil {
				return
			}
			if err := t.step(ctx, st); err != nil && ctx.Err() == nil {
				t.failed(err)
			}
		}
	}
}

func (e *emitter) status() []sketchd.EmitStatus {
	out := make([]sketchd.EmitStatus, len(e.targets))
	for i, t := range e.targets {
		out[i] = t.status()
	}
	return out
}

// target is one emit target's state. Fields: plan, cur, loaded, seen,
// lateSeen and lateKnown belong to the emitter's goroutine; the rest are
// atomics.
type target struct {
	e      *emitter
	idx    int
	spec   sketchd.Emit
	field  string // "emit[i]"
	plan   *api.EmitPlan
	js     jetstream.JetStream // nil: core NATS
	nc     *nats.Conn          // the connection js was made on
	ready  bool                // plan parsed and (JetStream) the target stream exists
	cur    cursor
	loaded bool
	// seen holds the events count last published per window and group of
	// the windows closed but not final (close trigger): a late event that
	// changes a window changes its count, and an update is published.
	seen      map[seenKey]uint64
	lateSeen  uint64 // the committed late-event count the closed windows are up to date with (stored in the cursor)
	lateKnown bool   // lateSeen is known (read, or loaded with the cursor)
	batch     int    // windows per query (halved while limits refuse)

	closedTo, finalTo    atomic.Int64
	messages, dups, errs atomic.Uint64
	backlog              atomic.Int64 // final windows not yet published
	lastErr              atomic.Pointer[string]
}

type seenKey struct {
	agg   int
	start int64
	group string
}

// cursor is the store's EmitCursor: windows ending at or before closedTo
// were published at close, at or before finalTo as final.
type cursor struct{ closedTo, finalTo int64 }

func newTarget(e *emitter, i int) *target {
	t := &target{e: e, idx: i, spec: e.spec.Emit[i], field: fmt.Sprintf("emit[%d]", i),
		seen: map[seenKey]uint64{}, batch: e.s.opts.BatchWindows}
	t.closedTo.Store(sketchd.NoTime)
	t.finalTo.Store(sketchd.NoTime)
	return t
}

func (t *target) failed(err error) {
	t.errs.Add(1)
	s := err.Error()
	if old := t.lastErr.Swap(&s); old == nil || *old != s {
		t.e.log.Warn("emit failed; retrying", "subject", t.spec.Subject, "err", err)
	}
}

func (t *target) succeeded() { t.lastErr.Store(nil) }

func (t *target) status() sketchd.EmitStatus {
	st := sketchd.EmitStatus{Subject: t.spec.Subject, ClosedTo: t.closedTo.Load(), FinalTo: t.finalTo.Load(),
		Messages: t.messages.Load(), Duplicates: t.dups.Load(), Errors: t.errs.Load()}
	if e := t.lastErr.Load(); e != nil {
		st.Error = *e
	}
	return st
}
