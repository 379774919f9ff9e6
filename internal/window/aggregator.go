package window

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/sketchd/sketchd"
)

// ErrClosed is returned by an Aggregator after Close.
var ErrClosed = errors.New("window: aggregator closed")

// Loader reads a stored pane of the aggregator's stream. The aggregator calls
// it when an event arrives for a pane that is not in memory (after a restart,
// or after the pane was evicted early), so that the event is added to the
// stored state rather than replacing it.
type Loader interface {
	Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error)
}

// Options tune an Aggregator. Zero values take the defaults of
// DefaultOptions.
type Options struct {
	// Shards is the number of goroutines that own panes. 0 = GOMAXPROCS.
	Shards int
	// QueueLen is the capacity, in batches, of each shard's input queue;
	// a full queue blocks Process (backpressure). 0 = 64.
	QueueLen int
	// MaxOpenPanes caps the panes held in memory across all shards. Past
	// it, the oldest panes are evicted early: handed to the next flush and
	// reloaded from the store if more events come. 0 = 200,000.
	MaxOpenPanes int
	// Logger receives load retries and evictions. nil = discard.
	Logger *slog.Logger
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Shards: runtime.GOMAXPROCS(0), QueueLen: 64, MaxOpenPanes: 200_000}
}

// Aggregator holds the open panes of one stream. Process, Tick and Flush
// may be called from different goroutines; Process calls must come in
// source order (one feeder).
type Aggregator struct {
	plan   *plan
	loader Loader
	log    *slog.Logger
	shards []*shard

	mu       sync.Mutex // guards the fields below; held while routing a batch
	clk      clock
	counters sketchd.Counters
	pos      uint64 // highest source position processed
	token    any
	pending  [][]item
	closed   bool
	gen      uint64

	inflightMu   sync.RWMutex
	inflight     map[paneKey]inflightRec // flushed but not yet committed
	inflightPeak int                     // the most entries inflight held since it was made

	open         atomic.Int64
	skipped      atomic.Uint64
	evictedEarly atomic.Uint64
	loads        atomic.Uint64
	loadErrors   atomic.Uint64

	wg   sync.WaitGroup
	done chan struct{}
}

type paneKey struct {
	key   string
	start int64
}

type inflightRec struct {
	rec sketchd.PaneRecord
	gen uint64
}

// New starts an aggregator for spec, resuming from cp (the zero Checkpoint
// for a new stream) at processing time now.
func New(spec sketchd.Stream, cp sketchd.Checkpoint, now int64, loader Loader, opts Options) (*Aggregator, error) {
	pl, err := compile(spec)
	if err != nil {
		return nil, err
	}
	def := DefaultOptions()
	if opts.Shards <= 0 {
		opts.Shards = def.Shards
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = def.QueueLen
	}
	if opts.MaxOpenPanes <= 0 {
		opts.MaxOpenPanes = def.MaxOpenPanes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{
		plan:     pl,
		loader:   loader,
		log:      opts.Logger,
		counters: cp.Counters.Clone(),
		pos:      cp.Position,
		pending:  make([][]item, opts.Shards),
		inflight: map[paneKey]inflightRec{},
		done:     make(chan struct{}),
	}
	if a.counters.Invalid == nil {
		a.counters.Invalid = map[string]uint64{}
	}
	a.clk = clock{maxEvent: noTime, wm: noTime, lastArrival: now}
	if cp.Position != 0 || cp.Watermark != 0 || cp.MaxEventTime != 0 {
		a.clk.maxEvent, a.clk.wm = cp.MaxEventTime, cp.Watermark
	}
	perShard := max(1, opts.MaxOpenPanes/opts.Shards)
	for i := range opts.Shards {
		s := &shard{
			agg:     a,
			plan:    pl,
			in:      make(chan shardMsg, opts.QueueLen),
			groups:  map[int64]map[string]*pane{},
			out:     map[paneKey]sketchd.PaneRecord{},
			maxOpen: perShard,
			wm:      a.clk.wm,
			rng:     mix64(uint64(i) + pl.tagSeed),
		}
		a.shards = append(a.shards, s)
		a.wg.Add(1)
		go s.run()
	}
	return a, nil
}

// Rejection is an event of a batch that was not applied.
type Rejection struct {
	Index  int    // index returned by Batch.Add
	Reason string // "too_late" or "future"
}

// Process classifies and routes a batch. It returns the events that were
// not applied (too late, or too far in the future) so the caller can
// dead-letter them. It blocks while a shard queue is full.
func (a *Aggregator) Process(ctx context.Context, b *Batch) ([]Rejection, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if b.Position != 0 && b.Position <= a.pos {
		// Already contained in the checkpoint this aggregator resumed
		// from: a redelivery whose ack was lost.
		return nil, nil
	}
	for _, r := range b.invalid {
		a.counters.Invalid[r]++
	}
	var rej []Rejection
	moved := false
	pl := a.plan
	for i := range b.items {
		it := &b.items[i]
		if it.pos != 0 && it.pos <= a.pos {
			continue
		}
		cls, start := pl.classify(&a.clk, it.t, b.Now)
		switch cls {
		case future:
			a.counters.Future++
			rej = append(rej, Rejection{Index: int(it.idx), Reason: cls.String()})
			continue
		case tooLate:
			a.counters.TooLate++
			rej = append(rej, Rejection{Index: int(it.idx), Reason: cls.String()})
			continue
		case late:
			a.counters.Late++
		default:
			a.counters.OnTime++
		}
		if pl.observe(&a.clk, it.t, b.Now) {
			moved = true
		}
		it.start = start
		s := a.shardOf(it.key)
		a.pending[s] = append(a.pending[s], *it)
		a.pos = max(a.pos, it.pos)
	}
	a.pos = max(a.pos, b.Position)
	if b.Token != nil {
		a.token = b.Token
	}
	return rej, a.dispatch(ctx, moved, nil)
}

// Tick advances the watermark by processing time when the stream has been
// idle for its idle timeout. Call it periodically with the current time.
func (a *Aggregator) Tick(ctx context.Context, now int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if !a.plan.idleAdvance(&a.clk, now) {
		return nil
	}
	return a.dispatch(ctx, true, nil)
}

// dispatch sends the pending items, and the watermark to every shard when it
// moved (or a barrier is attached). Called with a.mu held.
func (a *Aggregator) dispatch(ctx context.Context, wmMoved bool, barrier []chan []sketchd.PaneRecord) error {
	for i, s := range a.shards {
		items := a.pending[i]
		if len(items) == 0 && !wmMoved && barrier == nil {
			continue
		}
		msg := shardMsg{items: items, wm: a.clk.wm}
		if barrier != nil {
			msg.barrier, msg.gen = barrier[i], a.gen
		}
		a.pending[i] = nil
		select {
		case s.in <- msg:
		case <-ctx.Done():
			// The items not yet sent are lost to this aggregator: the
			// caller must not ack them, and a JetStream replay brings them
			// back. Poison the aggregator so nothing later is acked.
			a.closeLocked()
			return fmt.Errorf("window: dispatch interrupted: %w", ctx.Err())
		}
	}
	return nil
}

func (a *Aggregator) shardOf(key string) int {
	if len(a.shards) == 1 {
		return 0
	}
	return int(xxhash.Sum64String(key) % uint64(len(a.shards)))
}

// Snapshot is one flush: the panes changed since the previous flush, and the
// checkpoint they are consistent with. Commit it, then ack Token.
type Snapshot struct {
	Panes      []sketchd.PaneRecord
	Checkpoint sketchd.Checkpoint
	// Token is the token of the last batch the snapshot covers (nil if none
	// since the aggregator started).
	Token any
	gen   uint64
}

// Absorb folds a newer snapshot into s, for a caller whose commit of s failed
// and who flushed again: the newer record of a pane wins.
func (s *Snapshot) Absorb(newer *Snapshot) {
	idx := make(map[paneKey]int, len(s.Panes))
	for i, r := range s.Panes {
		idx[paneKey{r.Key, r.Start}] = i
	}
	for _, r := range newer.Panes {
		if i, ok := idx[paneKey{r.Key, r.Start}]; ok {
			s.Panes[i] = r
		} else {
			s.Panes = append(s.Panes, r)
		}
	}
	s.Checkpoint, s.gen = newer.Checkpoint, newer.gen
	if newer.Token != nil {
		s.Token = newer.Token
	}
}

// Flush takes a consistent snapshot without stopping ingestion for longer
// than it takes to put a barrier in each shard's queue.
func (a *Aggregator) Flush(ctx context.Context) (*Snapshot, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	a.gen++
	snap := &Snapshot{
		Checkpoint: sketchd.Checkpoint{
			Position:     a.pos,
			MaxEventTime: a.clk.maxEvent,
			Watermark:    a.clk.wm,
			Counters:     a.counters.Clone(),
		},
		Token: a.token,
		gen:   a.gen,
	}
	replies := make([]chan []sketchd.PaneRecord, len(a.shards))
	for i := range replies {
		replies[i] = make(chan []sketchd.PaneRecord, 1)
	}
	err := a.dispatch(ctx, true, replies)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, ch := range replies {
		select {
		case recs := <-ch:
			snap.Panes = append(snap.Panes, recs...)
		case <-ctx.Done():
			return nil, fmt.Errorf("window: flush interrupted: %w", ctx.Err())
		}
	}
	snap.Checkpoint.Counters.Skipped = a.skipped.Load()
	return snap, nil
}

// addInflight records panes flushed by a shard in generation gen as in
// flight until a commit of gen or later. Shards call it before replying to
// the barrier, so no event after the barrier can miss them.
func (a *Aggregator) addInflight(recs []sketchd.PaneRecord, gen uint64) {
	if len(recs) == 0 {
		return
	}
	a.inflightMu.Lock()
	defer a.inflightMu.Unlock()
	for _, r := range recs {
		a.inflight[paneKey{r.Key, r.Start}] = inflightRec{rec: r, gen: gen}
	}
	a.inflightPeak = max(a.inflightPeak, len(a.inflight))
}

// Committed tells the aggregator that snap is durable in the store, so the
// panes it evicted no longer need to be served from memory.
func (a *Aggregator) Committed(snap *Snapshot) {
	a.inflightMu.Lock()
	defer a.inflightMu.Unlock()
	for k, r := range a.inflight {
		if r.gen <= snap.gen {
			delete(a.inflight, k)
		}
	}
	// Drop the buckets of a burst (see shard.flush).
	if a.inflightPeak > shrinkAbove && len(a.inflight) < a.inflightPeak/4 {
		m := make(map[paneKey]inflightRec, len(a.inflight))
		for k, r := range a.inflight {
			m[k] = r
		}
		a.inflight, a.inflightPeak = m, len(m)
	}
}

func (a *Aggregator) inflightPane(k paneKey) (sketchd.PaneRecord, bool) {
	a.inflightMu.RLock()
	defer a.inflightMu.RUnlock()
	r, ok := a.inflight[k]
	return r.rec, ok
}

// Stats is a point-in-time view of the aggregator.
type Stats struct {
	Watermark    int64 // unix ns; math.MinInt64 before the first event
	MaxEventTime int64 // unix ns; math.MinInt64 before the first event
	Position     uint64
	Counters     sketchd.Counters
	OpenPanes    int64
	EvictedEarly uint64 // panes evicted before they were final (memory cap)
	Loads        uint64 // panes read back from the store
	LoadErrors   uint64 // failed store reads (retried)
	Inflight     int    // pane records flushed but not yet committed
}

// Stats returns the aggregator's current state.
func (a *Aggregator) Stats() Stats {
	a.mu.Lock()
	st := Stats{
		Watermark:    a.clk.wm,
		MaxEventTime: a.clk.maxEvent,
		Position:     a.pos,
		Counters:     a.counters.Clone(),
	}
	a.mu.Unlock()
	st.Counters.Skipped = a.skipped.Load()
	st.OpenPanes = a.open.Load()
	st.EvictedEarly = a.evictedEarly.Load()
	st.Loads = a.loads.Load()
	st.LoadErrors = a.loadErrors.Load()
	a.inflightMu.RLock()
	st.Inflight = len(a.inflight)
	a.inflightMu.RUnlock()
	return st
}

// Close stops the shards. State not flushed is dropped: flush and commit
// first. Close is idempotent.
func (a *Aggregator) Close() {
	a.mu.Lock()
	a.closeLocked()
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *Aggregator) closeLocked() {
	if a.closed {
		return
	}
	a.closed = true
	close(a.done)
	for _, s := range a.shards {
		close(s.in)
	}
}
