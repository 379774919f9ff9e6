package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
)

// Store is what ingest needs of the store; *store.DB implements it.
type Store interface {
	CreateStream(ctx context.Context, spec sketchd.Stream) (store.StreamInfo, error)
	Streams(ctx context.Context) ([]store.StreamInfo, error)
	Stream(ctx context.Context, name string) (store.StreamInfo, error)
	DeleteStream(ctx context.Context, name string) error
	AlterStream(ctx context.Context, name string, spec sketchd.Stream, alt sketchd.Alteration) (store.StreamInfo, error)
	Commit(ctx context.Context, streamID uint32, f sketchd.Flush) error
	Checkpoint(ctx context.Context, streamID uint32) (sketchd.Checkpoint, bool, error)
	Pane(ctx context.Context, streamID uint32, key string, start int64) (sketchd.PaneRecord, bool, error)
	Healthy() error
	InstanceID(ctx context.Context) (string, error)
	// Backfills (backfill.go).
	Backfill(ctx context.Context, streamID uint32) (sketchd.BackfillStatus, bool, error)
	SetBackfill(ctx context.Context, streamID uint32, st sketchd.BackfillStatus) error
	BackfillPanes(ctx context.Context, streamID uint32, panes []store.PaneAt, edit func(p *sketchd.PaneRecord) error, st sketchd.BackfillStatus) error
	ResetTiers(ctx context.Context, streamID uint32) error
}

// Options tune ingestion. Zero (or negative) values take the defaults of
// DefaultOptions.
type Options struct {
	// FlushInterval is how often dirty panes are committed and JetStream
	// acked. Default 1s. AckWait must comfortably exceed it (plus the time
	// a commit takes) and MaxAckPending must exceed the messages that
	// arrive in one interval, or the server stops delivering until the next
	// ack: see docs/operations.md.
	FlushInterval time.Duration
	// MaxCommitBackoff caps the wait between retries of a failed commit
	// (the wait starts at FlushInterval and doubles). Default 10s.
	MaxCommitBackoff time.Duration
	// AckWait before JetStream redelivers an unacked message. Default 30s.
	AckWait time.Duration
	// MaxAckPending caps delivered-but-unacked messages per consumer.
	// Default 1,000,000 (10 s of 100k msg/s at the default interval).
	MaxAckPending int
	// PullMaxMessages is the JetStream client's prefetch. Default 4096.
	PullMaxMessages int
	// MaxStreams caps the streams of one instance (each costs goroutines,
	// a NATS subscription, file descriptors and metrics series): a create
	// past it is refused. Default 256.
	MaxStreams int
	// MaxAggregates caps the aggregates of one stream. Default 32.
	MaxAggregates int
	// DeadLetterRate and DeadLetterBurst bound the dead and late letters
	// one stream publishes (a token bucket; see deadletter.go). Defaults
	// 1000 per second, burst 1000.
	DeadLetterRate  float64
	DeadLetterBurst int
	// QueueMessages is the per-stream channel between the NATS client and
	// the processing goroutine. Default 1024.
	QueueMessages int
	// CorePendingMsgs and CorePendingBytes are a core subscription's
	// pending limits; past them NATS drops (and sketchd counts) messages.
	// Defaults 500,000 and 64 MiB.
	CorePendingMsgs  int `default:"keep-negative"`
	CorePendingBytes int `default:"keep-negative"`
	Window           window.Options
	Decode           decode.Options
	// Now is the processing-time clock. Default time.Now.
	Now func() time.Time
	// InstanceID, when set, replaces the store's generated instance id:
	// it names the instance's durable consumers and, in cluster mode, the
	// instance to the others. [A-Za-z0-9_-]{1,32}.
	InstanceID string

	// afterAck, when set (crash tests), runs after each ack of a flush.
	afterAck func()
	// afterPosition, when set (tests), runs after a durable consumer is
	// positioned at start and before its deliveries are consumed.
	afterPosition func(durable string, start uint64)
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		FlushInterval:    time.Second,
		MaxCommitBackoff: 10 * time.Second,
		AckWait:          30 * time.Second,
		MaxAckPending:    1_000_000,
		PullMaxMessages:  4096,
		MaxStreams:       256,
		MaxAggregates:    32,
		DeadLetterRate:   1000,
		DeadLetterBurst:  1000,
		QueueMessages:    1024,
		CorePendingMsgs:  500_000,
		CorePendingBytes: 64 << 20,
		Window:           window.DefaultOptions(),
		Decode:           decode.DefaultOptions(),
		Now:              time.Now,
	}
}

// Manager runs the consumers of every stream and is the API's view of
// them: it implements api.Streams.
type Manager struct {
	connMu sync.RWMutex // guards nc and js, replaced by rebind
	nc     *nats.Conn
	js     jetstream.JetStream
	conn   *ConnState
	db     Store
	log    *slog.Logger
	opts   Options

	// ctx is the manager's lifetime: Stop cancels it, which ends the start
	// retries.
	ctx    context.Context
	cancel context.CancelFunc

	names    nameLocks  // serializes each name's lifecycle (names.go)
	instance string     // the store's instance id: part of durable names
	reset    resetState // the server's consumer reset, probed once (reset.go)

	mu      sync.Mutex
	runners map[string]*runner
	failed  map[string]failure // streams whose consumer could not start
	stopped bool
	retries sync.WaitGroup // running start retries
	// backfills are the running backfills by stream name (backfill.go):
	// such a stream has no runner until its backfill ends.
	backfills map[string]*backfillRun

	// cluster is the cluster mode; nil on a single node (cluster.go). A
	// replaced NATS connection swaps it for one joined on the new
	// connection (rejoin.go); clusterMu serializes that with Stop.
	cluster   atomic.Pointer[clusterMode]
	clusterMu sync.Mutex
	// holdSync is nil outside tests. A test sets it to hold a cluster
	// mode's registry follower before it reads the registry's first
	// event, with the mode's context, as a registry watch whose initial
	// values never come (its connection closed just after the watch
	// began) holds a join: TestClusterSecondCloseDuringRejoin lands a
	// second close inside a join this way.
	holdSync atomic.Pointer[func(ctx context.Context)]

	// unansweredDeletes counts JetStream consumer deletes the server left
	// unanswered (deleteConsumer), for /metrics.
	unansweredDeletes atomic.Uint64
}

type failure struct {
	info store.StreamInfo
	err  error
}

// NewManager returns a Manager; Start starts the streams.
func NewManager(nc *nats.Conn, conn *ConnState, db Store, logger *slog.Logger, opts Options) (*Manager, error) {
	opts = defaults.Fill(opts, DefaultOptions())
	if opts.AckWait < 5*opts.FlushInterval {
		return nil, fmt.Errorf("ingest: ack wait %s must be at least 5 × the flush interval %s", opts.AckWait, opts.FlushInterval)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if conn == nil {
		conn = &ConnState{}
		conn.connected.Store(nc.IsConnected())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("ingest: JetStream: %w", err)
	}
	instance := opts.InstanceID
	if instance == "" {
		var err error
		if instance, err = db.InstanceID(context.Background()); err != nil {
			return nil, fmt.Errorf("ingest: instance id: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		nc: nc, conn: conn, js: js, db: db, log: logger, opts: opts,
		ctx: ctx, cancel: cancel,
		runners:  map[string]*runner{},
		failed:   map[string]failure{},
		names:    nameLocks{m: map[string]*nameLock{}},
		instance: instance,
	}
	conn.OnReplaced(m.rebind)
	return m, nil
}

// conns returns the current NATS connection and its JetStream context.
func (m *Manager) conns() (*nats.Conn, jetstream.JetStream) {
	m.connMu.RLock()
	defer m.connMu.RUnlock()
	return m.nc, m.js
}

func (m *Manager) now() time.Time { return m.opts.Now() }

// Start registers the configured streams that the store does not have yet
// (a configured stream whose stored spec differs is an error: delete it to
// change it; only its rollup tiers may change, see SetRollups) and starts a
// consumer for every stored stream.
func (m *Manager) Start(ctx context.Context, configured []sketchd.Stream) error {
	if c := m.cluster.Load(); c != nil {
		return m.startCluster(ctx, c, configured) // cluster.go
	}
	for _, spec := range configured {
		if err := spec.CheckNotSetBySketchd(); err != nil {
			return fmt.Errorf("stream %q: %w", spec.Name, err)
		}
		info, err := m.db.Stream(ctx, spec.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err := m.db.CreateStream(ctx, spec); err != nil {
				return fmt.Errorf("register stream %q: %w", spec.Name, err)
			}
		case err != nil:
			return fmt.Errorf("read stream %q: %w", spec.Name, err)
		default:
			if err := sameSpec(info.Spec.AsConfigured(), spec); err != nil && onlyRollupsDiffer(info.Spec.AsConfigured(), spec) {
				if _, err := m.setRollups(ctx, info, spec.Rollups); err != nil {
					return fmt.Errorf("stream %q: change rollups: %w", spec.Name, err)
				}
				m.log.Info("stream rollups changed by the configuration", "stream", spec.Name, "rollups", len(spec.Rollups))
			} else if err != nil {
				return fmt.Errorf("stream %q: the configured spec differs from the stored one (%w); streams are immutable: delete it (DELETE /v1/streams/%s) or rename it", spec.Name, err, spec.Name)
			}
		}
	}
	infos, err := m.db.Streams(ctx)
	if err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, info := range infos {
		if m.resumeBackfill(ctx, info) {
			continue // it starts the runner when it ends
		}
		if err := m.startRunner(ctx, info); err != nil {
			m.log.Error("stream failed to start", "stream", info.Spec.Name, "err", err)
		}
	}
	return nil
}

func jsonOf(s sketchd.Stream) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func sameSpec(a, b sketchd.Stream) error {
	ja, err := jsonOf(a)
	if err != nil {
		return err
	}
	jb, err := jsonOf(b)
	if err != nil {
		return err
	}
	if ja != jb {
		return fmt.Errorf("stored %s, configured %s", ja, jb)
	}
	return nil
}

func (m *Manager) startRunner(ctx context.Context, info store.StreamInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("ingest: stopped")
	}
	r, err := newRunner(ctx, m, info)
	if err != nil {
		if _, retrying := m.failed[info.Spec.Name]; !retrying {
			m.retries.Go(func() { m.retryStart(m.ctx, info) })
		}
		m.failed[info.Spec.Name] = failure{info, err}
		return err
	}
	delete(m.failed, info.Spec.Name)
	m.runners[info.Spec.Name] = r
	r.log.Info("stream started", "subject", info.Spec.Subject, "jetstream", info.Spec.JetStream)
	return nil
}

// retryStart starts a stream whose consumer failed to start (NATS or
// JetStream unavailable, a timeout), with backoff, until it runs, is
// deleted, or the manager stops (ctx is done). Meanwhile Ready reports it.
func (m *Manager) retryStart(ctx context.Context, info store.StreamInfo) {
	name := info.Spec.Name
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		m.mu.Lock()
		f, ok := m.failed[name]
		m.mu.Unlock()
		if !ok || f.info.ID != info.ID {
			return // started, or deleted
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.startAgain(actx, info)
		cancel()
		if err == nil {
			m.log.Info("stream started after a failed start", "stream", name)
			return
		}
		m.log.Warn("stream still cannot start; retrying", "stream", name, "err", err, "backoff", backoff)
	}
}

// startAgain is startRunner for a stream in m.failed. It does not hold
// m.mu while it talks to NATS, so Ready and the API stay responsive.
func (m *Manager) startAgain(ctx context.Context, info store.StreamInfo) error {
	unlock := m.names.lock(info.Spec.Name)
	defer unlock()
	wanted := func() bool {
		f, ok := m.failed[info.Spec.Name]
		return !m.stopped && ok && f.info.ID == info.ID
	}
	m.mu.Lock()
	ok := wanted()
	m.mu.Unlock()
	if !ok {
		return nil
	}
	r, err := newRunner(ctx, m, info)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !wanted() {
		if err == nil {
			// Stopped or deleted meanwhile.
			_ = r.stop(ctx, false)
		}
		return nil
	}
	if err != nil {
		m.failed[info.Spec.Name] = failure{info, err}
		return err
	}
	delete(m.failed, info.Spec.Name)
	m.runners[info.Spec.Name] = r
	r.log.Info("stream started", "subject", info.Spec.Subject, "jetstream", info.Spec.JetStream)
	return nil
}

// List returns the status of every stream, sorted by name.
func (m *Manager) List(ctx context.Context) ([]sketchd.StreamStatus, error) {
	infos, err := m.db.Streams(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sketchd.StreamStatus, 0, len(infos))
	for _, info := range infos {
		out = append(out, m.statusOf(ctx, info))
	}
	return out, nil
}

// Get returns one stream's status; sketchd.ErrNotFound when unknown.
//
// The status of a running stream is the snapshot its runner last
// published (see status.go for how fresh it is): Get and List never wait
// for ingestion.
func (m *Manager) Get(ctx context.Context, name string) (sketchd.StreamStatus, error) {
	info, err := m.db.Stream(ctx, name)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	return m.statusOf(ctx, info), nil
}

func (m *Manager) statusOf(ctx context.Context, info store.StreamInfo) sketchd.StreamStatus {
	if cs := m.clusterStreamOf(info.Spec.Name); cs != nil && cs.info.ID == info.ID {
		return cs.status(ctx) // owner.go
	}
	m.mu.Lock()
	r, ok := m.runners[info.Spec.Name]
	f, failed := m.failed[info.Spec.Name]
	m.mu.Unlock()
	if ok && r.info.ID == info.ID {
		st := r.currentStatus()
		m.backfillStatus(ctx, &st)
		return st
	}
	st := sketchd.StreamStatus{ID: info.ID, Spec: info.Spec, Created: info.Created, State: "starting", Alters: info.Alters,
		Watermark: sketchd.NoTime, MaxEventTime: sketchd.NoTime, CommittedWatermark: sketchd.NoTime}
	st.Partitions = info.Partitions
	m.storedProgress(ctx, info, &st) // partitions.go
	st.Rollups = m.storedRollups(ctx, info)
	if failed {
		st.State, st.Error = "failed", f.err.Error()
	}
	m.backfillStatus(ctx, &st)
	return st
}

// Ready reports why the instance cannot serve now: NATS disconnected, the
// store failing (or refusing commits), or shutting down. It covers instance-level faults only: a
// stream that cannot start or commit says so in its own status (state,
// error), not here (see docs/operations.md).
func (m *Manager) Ready(context.Context) error {
	if nc, _ := m.conns(); !nc.IsConnected() {
		return fmt.Errorf("NATS is not connected (%s): %w", nc.Status(), sketchd.ErrUnavailable)
	}
	if err := m.db.Healthy(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := m.clusterReady(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return fmt.Errorf("shutting down: %w", sketchd.ErrUnavailable)
	}
	// A store that refuses a stream's commits refuses them all: that is
	// the instance's fault, whichever stream met it first.
	for n, lead := range m.runners {
		for _, r := range lead.parts() {
			if e := r.lastErr(); e != "" && r.committer.failing.Load() {
				return fmt.Errorf("the store refuses commits (stream %q: %s): %w", n, e, sketchd.ErrUnavailable)
			}
		}
	}
	return nil
}

// Stop drains every stream, commits its final flush and acks it. It returns
// the first error; every stream is stopped regardless.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.cancel()
	m.stopped = true
	runners := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		runners = append(runners, r)
	}
	m.runners = map[string]*runner{}
	backfills := slices.Collect(maps.Values(m.backfills))
	m.mu.Unlock()
	m.stopCluster(ctx)            // cluster.go
	for _, b := range backfills { // canceled with m.ctx; their progress stays
		<-b.done
	}
	var wg sync.WaitGroup
	errs := make([]error, len(runners))
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.stop(ctx, true)
			r.log.Info("stream stopped", "position_seq", sketchd.PositionSeq(r.committer.last.Position))
		}()
	}
	wg.Wait()
	m.retries.Wait()
	return errors.Join(errs...)
}

// running returns the running streams' runners.
func (m *Manager) running() []*runner {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		out = append(out, r)
	}
	return out
}
