package window

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/defaults"
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

// Options tune an Aggregator. Zero (or negative) values take the defaults
// of DefaultOptions.
type Options struct {
	// Shards is the number of goroutines that own panes. 0 = defaults.CPUs().
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
	return Options{Shards: defaults.CPUs(), QueueLen: 64, MaxOpenPanes: 200_000}
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
	outbox   [][]int32 // per shard: indexes of the batch's items routed to it, not yet sent
	route    []int32   // Process's scratch: each item's shard, noShard when not applied
	counts   []int     // Process's scratch: items per shard
	closed   bool
	gen      uint64

	uncommittedMu   sync.RWMutex
	uncommitted     map[paneKey]uncommittedRec // flushed but not yet committed
	uncommittedPeak int                        // the most entries uncommitted held since it was made
	uncommittedLen  atomic.Int64               // len(uncommitted), for Stats

	view atomic.Pointer[view] // what Stats reports; see publish

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

type uncommittedRec struct {
	rec sketchd.PaneRecord
	gen uint64
}

// NewAggregator starts an aggregator for spec, resuming from cp (the zero Checkpoint
// for a new stream) at processing time now.
func NewAggregator(spec sketchd.Stream, cp sketchd.Checkpoint, now int64, loader Loader, opts Options) (*Aggregator, error) {
	pl, err := compile(spec)
	if err != nil {
		return nil, err
	}
	opts = defaults.Fill(opts, DefaultOptions())
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{
		plan:        pl,
		loader:      loader,
		log:         opts.Logger,
		counters:    cp.Counters.Clone(),
		pos:         cp.Position,
		outbox:      make([][]int32, opts.Shards),
		uncommitted: map[paneKey]uncommittedRec{},
		done:        make(chan struct{}),
	}
	if a.counters.Invalid == nil {
		a.counters.Invalid = map[string]uint64{}
	}
	a.clk = clock{maxEvent: sketchd.NoTime, wm: sketchd.NoTime, lastArrival: now}
	if cp.Position != 0 || cp.Watermark != 0 || cp.MaxEventTime != 0 {
		a.clk.maxEvent, a.clk.wm = cp.MaxEventTime, cp.Watermark
	}
	a.publish(true)
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
	route := a.route[:0]
	applied := 0
	for i := range b.items {
		it := &b.items[i]
		if it.pos != 0 && it.pos <= a.pos {
			route = append(route, noShard)
			continue
		}
		cls, start := pl.classify(&a.clk, it.t, b.Now)
		switch cls {
		case future:
			a.counters.Future++
			rej = append(rej, Rejection{Index: int(it.idx), Reason: cls.String()})
			route = append(route, noShard)
			continue
		case tooLate:
			a.counters.TooLate++
			rej = append(rej, Rejection{Index: int(it.idx), Reason: cls.String()})
			route = append(route, noShard)
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
		route = append(route, int32(a.shardOf(it.key)))
		applied++
		a.pos = max(a.pos, it.pos)
	}
	a.routeItems(route, applied)
	a.route = route
	a.pos = max(a.pos, b.Position)
	if b.Token != nil {
		a.token = b.Token
	}
	a.publish(len(b.invalid) > 0)
	var mem *batchMem
	if applied > 0 {
		mem = b.takeMem()
	}
	return rej, a.dispatch(ctx, mem, moved, nil)
}

// noShard routes an item that is not applied.
const noShard = -1

// routeItems fills the outbox with the indexes of the applied items, per
// shard, in batch order: one allocation for the batch, cut by shard (the
// shards read the batch's items, which are not copied).
func (a *Aggregator) routeItems(route []int32, applied int) {
	if applied == 0 {
		return
	}
	counts := a.counts
	if len(counts) != len(a.shards) {
		counts = make([]int, len(a.shards))
		a.counts = counts
	}
	clear(counts)
	for _, s := range route {
		if s != noShard {
			counts[s]++
		}
	}
	all := make([]int32, applied)
	off := 0
	for s, n := range counts {
		a.outbox[s] = all[off : off : off+n]
		off += n
	}
	for i, s := range route {
		if s != noShard {
			a.outbox[s] = append(a.outbox[s], int32(i))
		}
	}
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
	a.publish(false)
	return a.dispatch(ctx, nil, true, nil)
}

// dispatch sends the outbox (indexes into mem's items), and the watermark
// to every shard when it moved (or a barrier is attached). Called with a.mu
// held. The shards release mem when they have applied its items; dispatch
// holds it until every message is sent, and keeps it (for the GC) when
// interrupted.
func (a *Aggregator) dispatch(ctx context.Context, mem *batchMem, wmMoved bool, barrier []chan []sketchd.PaneRecord) error {
	if mem != nil {
		holders := int32(1)
		for _, idx := range a.outbox {
			if len(idx) > 0 {
				holders++
			}
		}
		mem.refs.Store(holders)
	}
	for i, s := range a.shards {
		idx := a.outbox[i]
		if len(idx) == 0 && !wmMoved && barrier == nil {
			continue
		}
		msg := shardMsg{wm: a.clk.wm}
		if len(idx) > 0 {
			msg.mem, msg.idx = mem, idx
		}
		if barrier != nil {
			msg.barrier, msg.gen = barrier[i], a.gen
		}
		a.outbox[i] = nil
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
	if mem != nil {
		mem.release()
	}
	return nil
}

func (a *Aggregator) shardOf(key string) int {
	if len(a.shards) == 1 {
		return 0
	}
	return int(xxhash.Sum64String(key) % uint64(len(a.shards)))
}

// Flush takes a consistent cut of the aggregation: the panes changed since
// the previous flush and the checkpoint they are consistent with. It does
// not stop ingestion for longer than it takes to put a barrier in each
// shard's queue. Commit the flush, call Committed, then ack its Token.
func (a *Aggregator) Flush(ctx context.Context) (*sketchd.Flush, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	a.gen++
	f := &sketchd.Flush{
		Checkpoint: sketchd.Checkpoint{
			Position:     a.pos,
			MaxEventTime: a.clk.maxEvent,
			Watermark:    a.clk.wm,
			Counters:     a.counters.Clone(),
		},
		Token: a.token,
		Gen:   a.gen,
	}
	replies := make([]chan []sketchd.PaneRecord, len(a.shards))
	for i := range replies {
		replies[i] = make(chan []sketchd.PaneRecord, 1)
	}
	err := a.dispatch(ctx, nil, true, replies)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, ch := range replies {
		select {
		case recs := <-ch:
			f.Panes = append(f.Panes, recs...)
		case <-ctx.Done():
			return nil, fmt.Errorf("window: flush interrupted: %w", ctx.Err())
		}
	}
	f.Checkpoint.Counters.Skipped = a.skipped.Load()
	return f, nil
}

// addUncommitted records panes flushed by a shard in generation gen as
// uncommitted until a commit of gen or later. Shards call it before replying
// to the barrier, so no event after the barrier can miss them.
func (a *Aggregator) addUncommitted(recs []sketchd.PaneRecord, gen uint64) {
	if len(recs) == 0 {
		return
	}
	a.uncommittedMu.Lock()
	defer a.uncommittedMu.Unlock()
	for _, r := range recs {
		a.uncommitted[paneKey{r.Key, r.Start}] = uncommittedRec{rec: r, gen: gen}
	}
	a.uncommittedPeak = max(a.uncommittedPeak, len(a.uncommitted))
	a.uncommittedLen.Store(int64(len(a.uncommitted)))
}

// Committed tells the aggregator that f is durable in the store, so the
// panes it evicted no longer need to be served from memory.
func (a *Aggregator) Committed(f *sketchd.Flush) {
	a.uncommittedMu.Lock()
	defer a.uncommittedMu.Unlock()
	for k, r := range a.uncommitted {
		if r.gen <= f.Gen {
			delete(a.uncommitted, k)
		}
	}
	// Drop the buckets of a burst (see shard.flush).
	if a.uncommittedPeak > shrinkAbove && len(a.uncommitted) < a.uncommittedPeak/4 {
		m := make(map[paneKey]uncommittedRec, len(a.uncommitted))
		for k, r := range a.uncommitted {
			m[k] = r
		}
		a.uncommitted, a.uncommittedPeak = m, len(m)
	}
	a.uncommittedLen.Store(int64(len(a.uncommitted)))
}

// uncommittedPane returns the record of a pane flushed but not yet
// committed: a shard reloading an evicted pane reads it here, since the
// store may not have it yet.
func (a *Aggregator) uncommittedPane(k paneKey) (sketchd.PaneRecord, bool) {
	a.uncommittedMu.RLock()
	defer a.uncommittedMu.RUnlock()
	r, ok := a.uncommitted[k]
	return r.rec, ok
}

// Stats is a point-in-time view of the aggregator.
type Stats struct {
	Watermark    int64 // unix ns; sketchd.NoTime before the first event
	MaxEventTime int64 // unix ns; sketchd.NoTime before the first event
	Position     uint64
	Counters     sketchd.Counters
	OpenPanes    int64
	EvictedEarly uint64 // panes evicted before they were final (memory cap)
	Loads        uint64 // panes read back from the store
	LoadErrors   uint64 // failed store reads (retried)
	Uncommitted  int    // pane records flushed but not yet committed
}

// view is the part of Stats that Process and Tick change under a.mu. They
// publish a new one whenever they change it, before they send anything to
// the shards, so Stats reads it without the lock.
type view struct {
	watermark, maxEventTime int64
	position                uint64
	counters                sketchd.Counters // never modified once published
}

// publish makes the state under a.mu visible to Stats. Called with a.mu
// held. The Invalid counts are copied only when they changed.
func (a *Aggregator) publish(invalidChanged bool) {
	c := a.counters
	if prev := a.view.Load(); prev != nil && !invalidChanged {
		c.Invalid = prev.counters.Invalid
	} else {
		c.Invalid = maps.Clone(a.counters.Invalid)
	}
	a.view.Store(&view{watermark: a.clk.wm, maxEventTime: a.clk.maxEvent, position: a.pos, counters: c})
}

// Stats returns the aggregator's state as of the last Process or Tick, and
// its pane gauges now. It takes no lock, so it never waits for a Process
// blocked on a full shard queue (backpressure): callers that serve queries
// may call it at any time. The Counters are a deep copy.
func (a *Aggregator) Stats() Stats {
	v := a.view.Load()
	st := Stats{
		Watermark:    v.watermark,
		MaxEventTime: v.maxEventTime,
		Position:     v.position,
		Counters:     v.counters.Clone(),
		OpenPanes:    a.open.Load(),
		EvictedEarly: a.evictedEarly.Load(),
		Loads:        a.loads.Load(),
		LoadErrors:   a.loadErrors.Load(),
		Uncommitted:  int(a.uncommittedLen.Load()),
	}
	st.Counters.Skipped = a.skipped.Load()
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
