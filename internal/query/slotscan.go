package query

import (
	"context"
	"time"

	"github.com/sketchd/sketchd"
)

// slotScanner is a reader that can copy only one slot of each pane it
// scans (store.DB): a query reads one aggregate, and the other sketches of
// a pane were copied for nothing.
type slotScanner interface {
	ScanTierPaneSlot(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error
}

// scanSlot calls fn for each pane of keys in [from, to) of the plan's
// stream, as ScanPanes does, with the records holding at least the sketch of
// the plan's aggregate (sketchd.SlotBlob). A stream read over partitions
// merges whole panes (partitionReader), so it reads every slot.
func (q *Querier) scanSlot(ctx context.Context, p *plan, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	if ss, ok := q.r.(slotScanner); ok && len(p.target.Partitions) == 0 {
		return ss.ScanTierPaneSlot(ctx, p.target.ID, 0, keys, from, to, p.agg.index, fn)
	}
	return q.reader(p.target).ScanPanes(ctx, p.target.ID, keys, from, to, fn)
}

// borrowScanner is a slotScanner that can also give the slot's blob
// without copying it (store.DB): valid only while fn runs.
type borrowScanner interface {
	ScanTierPaneSlotBorrowed(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error
}

// scanSlotBorrowed is scanSlot for an fn that keeps neither the record
// nor its blob (it decodes the blob at once: every sketch decoder copies
// what it keeps): the store then lends it the blob instead of copying it.
func (q *Querier) scanSlotBorrowed(ctx context.Context, p *plan, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	if bs, ok := q.r.(borrowScanner); ok && len(p.target.Partitions) == 0 {
		return bs.ScanTierPaneSlotBorrowed(ctx, p.target.ID, 0, keys, from, to, p.agg.index, fn)
	}
	return q.scanSlot(ctx, p, keys, from, to, fn)
}

// scanTierSlot is scanSlot over the panes of a rollup tier.
func (q *Querier) scanTierSlot(ctx context.Context, tr TierReader, p *plan, tier time.Duration, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	if ss, ok := tr.(slotScanner); ok {
		return ss.ScanTierPaneSlot(ctx, p.target.ID, tier, keys, from, to, p.agg.index, fn)
	}
	return tr.ScanTierPanes(ctx, p.target.ID, tier, keys, from, to, fn)
}
