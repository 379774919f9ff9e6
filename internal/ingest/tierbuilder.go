package ingest

// The tier builder: the goroutine that builds a stream's stored rollup
// tiers (sketchd.Rollup) from final panes. For each tier, finest first, it
// takes the next unit — one tier pane's interval [c, c+G) over every key,
// from the tier's cursor c, or a batch of up to tierBatchUnits consecutive
// ones — once the unit's source panes are final: the
// stream's own panes when the committed watermark has passed c+G by the
// allowed lateness (sketchd.Stream.WindowFinalAt), the tier below's once
// its cursor has reached c+G. It recomputes each key's tier pane from its
// source panes (paneMerger) and writes it whole, with the cursor c+G after
// it (store.WriteTier). A crash loses at most the batch in progress, which
// the next run recomputes and overwrites: a source pane is never merged
// twice, nor lost. Late events need nothing more: a base pane is only final
// once no late event can reach it.
//
// An import into a final pane (store.UpdatePane) lowers the cursors of the
// tiers that hold it; the builder reloads its cursors at every pass and
// rebuilds from there (a cursor write it had in flight is refused with
// store.ErrTierRewound).
//
// A stream given tiers later (a new spec over stored panes) builds them the
// same way from its first stored pane; the cursors make that resumable
// across restarts, and the status shows each tier's progress.
//
// Goroutine: runTiers, one per stream with tiers, started with the
// runner's other goroutines and ended by the run context (stop); it never
// returns an error (failures are logged, counted and retried next tick).
// It reads the committed watermark (an atomic the committer writes) and
// takes no lock that ingestion or queries hold, so neither waits for it.
//
// Fields (tierState): cursors are written by runTiers and read by the
// status.

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// TierStore is what the tier builder needs of the store; *store.DB
// implements it. A Store without it builds no tiers.
type TierStore interface {
	TierKeys(ctx context.Context, streamID uint32, tier time.Duration, from, to int64, fn func(key string) error) error
	ScanTierPanes(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error
	FirstPaneAfter(ctx context.Context, streamID uint32, tier time.Duration, from int64) (int64, bool, error)
	TierCursor(ctx context.Context, streamID uint32, tier time.Duration) (int64, bool, error)
	WriteTier(ctx context.Context, streamID uint32, tier time.Duration, panes []sketchd.PaneRecord, built int64) error
	WriteTierPanes(ctx context.Context, streamID uint32, tier time.Duration, panes []sketchd.PaneRecord) error
}

// tierState is the builder's progress, per tier in spec order.
type tierState struct {
	cursors  []atomic.Int64 // built up to (unix ns); sketchd.NoTime before the first unit
	ready    []atomic.Int64 // how far the sources were final at the last look
	units    atomic.Uint64  // units built
	errors   atomic.Uint64  // failed units
	deferred atomic.Uint64  // passes deferred to a backlog
}

func (t *tierState) init(n int) {
	t.cursors = make([]atomic.Int64, n)
	t.ready = make([]atomic.Int64, n)
	for i := range n {
		t.cursors[i].Store(sketchd.NoTime)
		t.ready[i].Store(sketchd.NoTime)
	}
}

// Bounds of one write of tier panes: the panes of a batch of units are
// written in chunks, the cursor with the last. A batch is at most
// tierBatchUnits consecutive units, read with one key listing and one scan
// per key (a backlog, as when tiers are added to a stream with history,
// builds in batches; live, one unit is final at a time).
const (
	tierBatchUnits = 12
	tierChunkPanes = 1024
	tierChunkBytes = 4 << 20
)

// While the stream's JetStream consumer has a backlog (more than
// tierBacklogPulls of the client's prefetches pending: a stream catching up
// after downtime, or created over a stream's history), the builder waits,
// at most tierMaxDefers passes in a row, so that the backlog drains at the
// rate without tiers; it then builds what turned final, in batches. Queries
// meanwhile read the base panes past each tier's cursor: the same answers,
// from more panes. The work is the same, only later (the runner's "ingest
// cost of rollup tiers" reports both the rate and the CPU per event).
const (
	tierBacklogPulls = 4
	tierMaxDefers    = 10
)

// catchingUp reports whether the stream's JetStream consumer has a backlog
// (the pending count of its last delivery or info refresh).
func (r *runner) catchingUp() bool {
	return r.spec.JetStream && r.consumer.numPending.Load() > uint64(tierBacklogPulls*r.m.opts.PullMaxMessages)
}

// tierPace counts the builder's passes deferred in a row.
type tierPace struct{ deferred int }

// wait reports whether this pass waits for the backlog to drain.
func (p *tierPace) wait(r *runner) bool {
	if r.catchingUp() && p.deferred < tierMaxDefers {
		p.deferred++
		r.tiers.deferred.Add(1)
		return true
	}
	p.deferred = 0
	return false
}

// runTiers is the builder's goroutine: build what is final, then wait a
// flush interval, until run is done.
func (r *runner) runTiers(run context.Context) error {
	ts, ok := r.m.db.(TierStore)
	if !ok || len(r.spec.Rollups) == 0 {
		return nil
	}
	merger, err := newPaneMerger(&r.spec)
	if err != nil {
		r.log.Error("rollup tiers disabled", "err", err)
		return nil
	}
	b := &tierBuilder{r: r, ts: ts, merger: merger}
	t := time.NewTicker(r.m.opts.FlushInterval)
	defer t.Stop()
	var pace tierPace
	for {
		// Every pass reloads the cursors: an import into a final pane
		// lowers those of the tiers that hold it (store.ErrTierRewound).
		switch {
		case pace.wait(r):
			b.refreshReady()
		case b.loadCursors(run):
			b.buildAll(run)
		}
		select {
		case <-run.Done():
			return nil
		case <-t.C:
		}
	}
}

type tierBuilder struct {
	r      *runner
	ts     TierStore
	merger paneMerger
}

// loadCursors reads each tier's stored cursor; false when the store failed.
func (b *tierBuilder) loadCursors(ctx context.Context) bool {
	for i, t := range b.r.spec.Rollups {
		c, ok, err := b.ts.TierCursor(ctx, b.r.info.ID, t.Granularity.Std())
		if err != nil {
			b.failed(i, err)
			return false
		}
		if ok {
			b.r.tiers.cursors[i].Store(c)
		}
	}
	return true
}

// buildAll builds every unit of every tier that is final now, finest tier
// first (a coarser tier reads the finer one's output).
func (b *tierBuilder) buildAll(ctx context.Context) {
	for i := range b.r.spec.Rollups {
		for ctx.Err() == nil {
			more, err := b.step(ctx, i)
			if err != nil {
				if ctx.Err() == nil {
					b.failed(i, err)
				}
				break
			}
			if !more {
				break
			}
		}
	}
}

// refreshReady records how far each tier's sources are final now (the
// status's ready_to) on a pass that builds nothing.
func (b *tierBuilder) refreshReady() {
	for i, t := range b.r.spec.Rollups {
		if _, final := b.source(i); final != sketchd.NoTime {
			b.r.tiers.ready[i].Store(sketchd.PaneStart(final, int64(t.Granularity)))
		}
	}
}

// source returns tier i's source granularity for the store (0: the base
// panes) and how far its source is final now (unix ns, exclusive).
func (b *tierBuilder) source(i int) (time.Duration, int64) {
	spec := &b.r.spec
	if i == 0 {
		wm := b.r.committer.committedWM.Load()
		if wm == sketchd.NoTime {
			return 0, sketchd.NoTime
		}
		// WindowFinalAt(end, wm) ⇔ end ≤ FinalEnd(wm).
		return 0, spec.FinalEnd(wm)
	}
	return spec.Rollups[i-1].Granularity.Std(), b.r.tiers.cursors[i-1].Load()
}

// step builds tier i's next unit, or skips to the next source data when the
// unit is empty. It reports whether there may be more to do now.
func (b *tierBuilder) step(ctx context.Context, i int) (bool, error) {
	spec, id := &b.r.spec, b.r.info.ID
	tier := spec.Rollups[i].Granularity.Std()
	g := int64(tier)
	src, final := b.source(i)
	if final == sketchd.NoTime {
		return false, nil
	}
	limit := sketchd.PaneStart(final, g) // units ending at or before final
	b.r.tiers.ready[i].Store(limit)
	c := b.r.tiers.cursors[i].Load()
	if c == sketchd.NoTime {
		first, ok, err := b.ts.FirstPaneAfter(ctx, id, src, sketchd.NoTime)
		if err != nil || !ok {
			return false, err
		}
		c = sketchd.PaneStart(first, g)
	}
	if c >= limit {
		return false, nil
	}
	hi := min(limit, c+tierBatchUnits*g)
	keys, err := b.unitKeys(ctx, src, c, hi)
	if err != nil {
		return false, err
	}
	if len(keys) == 0 {
		next, ok, err := b.ts.FirstPaneAfter(ctx, id, src, hi)
		if err != nil {
			return false, err
		}
		to := limit
		if ok && sketchd.PaneStart(next, g) < limit {
			to = sketchd.PaneStart(next, g)
		}
		if err := b.ts.WriteTier(ctx, id, tier, nil, to); err != nil {
			return false, err
		}
		b.r.tiers.cursors[i].Store(to)
		return to < limit, nil
	}
	if err := b.buildUnits(ctx, i, src, keys, c, hi); err != nil {
		return false, err
	}
	b.r.tiers.cursors[i].Store(hi)
	b.r.tiers.units.Add(uint64((hi - c) / g))
	return hi < limit, nil
}

// unitKeys lists the keys with a source pane in [from, to).
func (b *tierBuilder) unitKeys(ctx context.Context, src time.Duration, from, to int64) ([]string, error) {
	var keys []string
	err := b.ts.TierKeys(ctx, b.r.info.ID, src, from, to, func(k string) error {
		keys = append(keys, k)
		return nil
	})
	return keys, err
}

// buildUnits recomputes the tier panes of keys in [c, hi) (whole units)
// from their source panes and writes them, in chunks, the cursor hi with
// the last: one key listing, one scan and one sync for up to
// tierBatchUnits units.
func (b *tierBuilder) buildUnits(ctx context.Context, i int, src time.Duration, keys []string, c, hi int64) error {
	spec, id := &b.r.spec, b.r.info.ID
	tier := spec.Rollups[i].Granularity.Std()
	g := int64(tier)
	var out []sketchd.PaneRecord
	size := 0
	flush := func(last bool) error {
		var err error
		if last {
			err = b.ts.WriteTier(ctx, id, tier, out, hi)
		} else {
			err = b.ts.WriteTierPanes(ctx, id, tier, out)
		}
		out, size = out[:0], 0
		return err
	}
	for lo := 0; lo < len(keys); lo += tierChunkPanes {
		chunk := keys[lo:min(lo+tierChunkPanes, len(keys))]
		var cur []sketchd.PaneRecord
		emit := func() error {
			if len(cur) == 0 {
				return nil
			}
			p, err := b.merger.merge(cur[0].Key, sketchd.PaneStart(cur[0].Start, g), cur)
			if err != nil {
				return err
			}
			out = append(out, p)
			size += len(p.Key)
			for _, s := range p.Sketches {
				size += len(s)
			}
			cur = cur[:0]
			if size >= tierChunkBytes {
				return flush(false)
			}
			return nil
		}
		err := b.ts.ScanTierPanes(ctx, id, src, chunk, c, hi, func(p sketchd.PaneRecord) error {
			if len(cur) > 0 && (cur[0].Key != p.Key || sketchd.PaneStart(cur[0].Start, g) != sketchd.PaneStart(p.Start, g)) {
				if err := emit(); err != nil {
					return err
				}
			}
			cur = append(cur, p)
			return nil
		})
		if err == nil {
			err = emit()
		}
		if err != nil {
			return err
		}
	}
	return flush(true)
}

// failed logs and counts a failed unit; the next tick retries it.
func (b *tierBuilder) failed(i int, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if errors.Is(err, store.ErrTierRewound) {
		b.r.log.Info("rollup tier rewound by an import; rebuilding", "tier", b.r.spec.Rollups[i].Granularity)
		return
	}
	b.r.tiers.errors.Add(1)
	b.r.log.Warn("rollup tier build failed; retrying next tick", "tier", b.r.spec.Rollups[i].Granularity, "err", err)
}

// rollupStatus is the tiers' progress for the stream status.
func (r *runner) rollupStatus() []sketchd.RollupStatus {
	if len(r.spec.Rollups) == 0 || r.tiers.cursors == nil {
		return nil
	}
	out := make([]sketchd.RollupStatus, len(r.spec.Rollups))
	for i, t := range r.spec.Rollups {
		out[i] = sketchd.RollupStatus{Granularity: t.Granularity, BuiltTo: r.tiers.cursors[i].Load(), ReadyTo: r.tiers.ready[i].Load()}
	}
	return out
}

// storedRollups is the tiers' progress of a stream whose runner does not
// run (starting, backfilling, failed): each tier's stored cursor, and no
// ready_to (the builder has not looked).
func (m *Manager) storedRollups(ctx context.Context, info store.StreamInfo) []sketchd.RollupStatus {
	ts, ok := m.db.(TierStore)
	if !ok || len(info.Spec.Rollups) == 0 {
		return nil
	}
	out := make([]sketchd.RollupStatus, len(info.Spec.Rollups))
	for i, t := range info.Spec.Rollups {
		out[i] = sketchd.RollupStatus{Granularity: t.Granularity, BuiltTo: sketchd.NoTime, ReadyTo: sketchd.NoTime}
		if c, ok, err := ts.TierCursor(ctx, info.ID, t.Granularity.Std()); err == nil && ok {
			out[i].BuiltTo = c
		}
	}
	return out
}

var _ TierStore = (*store.DB)(nil)
