package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
)

// runner consumes one stream. Its work is cut in three parts, each owned by
// one goroutine and kept in its own file:
//
//	consumer.go   the NATS side: the core subscription or the JetStream
//	              consumer (resets, epochs, reconnections), and its drain
//	intake.go     decoding, batching, Process in source order, dead letters
//	committer.go  tick → flush → commit → ack, the intake gate, retries
//
// The lifecycle below starts the three goroutines and stops them in order;
// status.go is the snapshot they publish for the API.
type runner struct {
	// Set before the goroutines start; read-only after.
	m    *Manager
	nc   *nats.Conn          // the connection the runner started on
	js   jetstream.JetStream // its JetStream context
	info store.StreamInfo
	spec sketchd.Stream
	log  *slog.Logger
	agg  *window.Aggregator

	// part is the partition this runner consumes (-1: unpartitioned) and
	// dataID the store ID of its panes and checkpoint. The runner of
	// partition 0 leads: it holds the others (siblings) and speaks for
	// the stream (partitions.go).
	part     int
	dataID   uint32
	siblings []*runner
	// own is set when the runner owns its partition in cluster mode
	// (owner.go): its commits go to the changelog first. commits is what
	// makes a flush durable: the store, or own.
	own     *ownership
	commits cluster.Committer

	life      lifecycle
	consumer  consumerState
	intake    intakeState
	committer committerState
	status    statusBoard
	tiers     tierState // tierbuilder.go
}

// lifecycle starts the runner's goroutines and stops them in order. Two
// contexts reach every goroutine:
//
//   - run is done when stop begins: the consumer stops resetting and drains
//     the subscription, the intake gate opens;
//   - drain is done when stop's own context is (its deadline passed): waits
//     are cut short, and Process, Tick, Flush and Commit are interrupted.
//     Until then they run to completion, so what was delivered is processed
//     and committed.
//
// The stop order follows the data: the consumer drains the source and
// closes the intake queue; the intake processes what is queued and ends;
// the committer sees the intake end and makes the final commit (when
// final); stop waits for all three and closes the aggregator.
type lifecycle struct {
	g       errgroup.Group
	run     context.Context
	stop    context.CancelFunc
	drain   context.Context
	abandon context.CancelFunc
	final   atomic.Bool // stop asked for a final commit
}

func newLifecycle(parent context.Context) lifecycle {
	// A stream outlives the request that started it: keep parent's values,
	// not its cancellation.
	base := context.WithoutCancel(parent)
	run, stop := context.WithCancel(base)
	drain, abandon := context.WithCancel(base)
	return lifecycle{run: run, stop: stop, drain: drain, abandon: abandon}
}

// Batching bounds for one Process call.
const (
	maxBatchMsgs   = 512
	maxBatchEvents = 4096
)

// newPartRunner starts the runner of partition part of the stream (-1:
// the unpartitioned stream).
func newPartRunner(ctx context.Context, m *Manager, info store.StreamInfo, part int) (*runner, error) {
	return startPartRunner(ctx, m, info, part, nil)
}

// startPartRunner is newPartRunner for an owner in cluster mode too (own
// not nil: commits go through the changelog).
func startPartRunner(ctx context.Context, m *Manager, info store.StreamInfo, part int, own *ownership) (*runner, error) {
	spec := info.Spec
	nc, js := m.conns()
	r := &runner{
		m:      m,
		nc:     nc,
		js:     js,
		info:   info,
		spec:   spec,
		log:    m.log.With("stream", spec.Name),
		life:   newLifecycle(ctx),
		part:   part,
		dataID: info.ID,
		own:    own,
	}
	r.commits = m.db
	if own != nil {
		own.r, r.commits = r, own
	}
	if part >= 0 {
		r.dataID = info.Partitions[part]
		r.log = r.log.With("partition", part)
	}
	r.consumer.init()
	r.intake.init(m.opts.QueueMessages)
	r.intake.letters = rate.NewLimiter(rate.Limit(m.opts.DeadLetterRate), m.opts.DeadLetterBurst)
	r.committer.init()
	r.tiers.init(len(spec.Rollups))
	dec, err := decode.New(spec, m.opts.Decode)
	if err != nil {
		return nil, err
	}
	r.intake.dec = dec
	if err := r.resume(ctx); err != nil {
		return nil, err
	}
	if err := r.subscribe(ctx); err != nil {
		r.agg.Close()
		r.life.stop()
		r.life.abandon()
		return nil, err
	}
	r.publishStatus()
	r.start()
	return r, nil
}

// resume reads the stream's checkpoint and starts its aggregator from it.
func (r *runner) resume(ctx context.Context) error {
	cp, ok, err := r.m.db.Checkpoint(ctx, r.dataID)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if ok {
		r.committer.last = cp
		r.committer.committedWM.Store(cp.Watermark)
		r.committer.committedSeq.Store(sketchd.PositionSeq(cp.Position))
		r.log.Info("resuming from checkpoint", "position_seq", sketchd.PositionSeq(cp.Position), "watermark", fmtTime(cp.Watermark))
	}
	wopts := r.m.opts.Window
	wopts.Logger = r.log
	agg, err := window.NewAggregator(r.spec, cp, r.m.now().UnixNano(), paneLoader{r.m.db, r.dataID}, wopts)
	if err != nil {
		return err
	}
	r.agg = agg
	return nil
}

// start starts the three goroutines, and the tier builder (tierbuilder.go)
// of a stream with rollup tiers; stop ends them.
func (r *runner) start() {
	run, drain := r.life.run, r.life.drain
	r.life.g.Go(func() error { return r.runConsumer(run, drain) })
	r.life.g.Go(func() error { return r.runIntake(run, drain) })
	r.life.g.Go(func() error { return r.runCommitter(drain) })
	r.life.g.Go(func() error { return r.runTiers(run) })
}

// stop drains the subscription, processes what was delivered, and (when
// final) flushes, commits and acks for the last time. When ctx is done
// before that ends, the rest is abandoned: nothing more is acked, and
// JetStream redelivers it to the next run.
func (r *runner) stop(ctx context.Context, final bool) error {
	if len(r.siblings) > 0 {
		return r.stopAll(ctx, final) // partitions.go
	}
	return r.stopOne(ctx, final)
}

// stopOne is stop for one runner (one partition).
func (r *runner) stopOne(ctx context.Context, final bool) error {
	r.life.final.Store(final)
	cut := context.AfterFunc(ctx, r.life.abandon)
	defer cut()
	r.life.stop()
	err := r.life.g.Wait()
	r.agg.Close()
	r.life.abandon()
	return err
}

// paneLoader reads the stream's stored panes for the aggregator.
type paneLoader struct {
	db Store
	id uint32
}

func (l paneLoader) Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	return l.db.Pane(ctx, l.id, key, start)
}

func fmtTime(ns int64) string {
	if ns == sketchd.NoTime {
		return "none"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}
