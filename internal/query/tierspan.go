package query

import (
	"context"
	"fmt"
	"time"

	"github.com/sketchd/sketchd"
)

// tierSpanCache keeps which tier panes a key has in a built tier span:
// their starts. Built tier panes are final and written once (tiers.go), and
// their decoded sketches are in the pane cache; without this a query still
// read every tier pane from Badger to learn which exist, which was 18% of
// sketchd's CPU at 1,000 req/s in the load runner.
// A key is served from here only when every pane it lists is still in the
// pane cache; otherwise it is read again. The stream's generation (Forget:
// imports, alters) is in the key; like the other caches an entry may
// outlive retention until evicted.
type tierSpanCache = boundedMap[tierSpanPanesKey, []int64]

type tierSpanPanesKey struct {
	stream   uint32
	gen      uint64
	tier     int64
	from, to int64
	key      string
}

// maxTierSpanEntries bounds the cache; past it the cache starts over.
const maxTierSpanEntries = 1 << 16

// tierPane is one tier pane of a key, decoded.
type tierPane struct {
	start int64
	v     cached
}

// tierPanesCached returns the panes of key in the tier span s when the
// span cache lists them and the pane cache holds every one.
func (q *Querier) tierPanesCached(p *plan, s Span, key string) ([]tierPane, bool) {
	starts, ok := q.tierSpans.get(tierSpanPanesKey{stream: p.target.ID, gen: p.gen, tier: s.Granularity, from: s.From, to: s.To, key: key})
	if !ok {
		return nil, false
	}
	panes := make([]tierPane, len(starts))
	for i, start := range starts {
		v, ok := q.cache.get(p.tierPaneID(key, start, s.Granularity))
		if !ok {
			return nil, false
		}
		panes[i] = tierPane{start: start, v: cached{sk: v.sk, events: v.events, panes: 1}}
	}
	return panes, true
}

// scanTierSpan reads the tier panes of keys in the span s from the store
// into got (by the key's position in p.keys) and records which panes each
// key has.
func (q *Querier) scanTierSpan(ctx context.Context, tr TierReader, p *plan, s Span, keys []string, pos map[string]int, got [][]tierPane) error {
	ai := p.agg.index
	err := q.scanTierSlot(ctx, tr, p, time.Duration(s.Granularity), keys, s.From, s.To, func(r sketchd.PaneRecord) error {
		i, ok := pos[r.Key]
		if !ok {
			return fmt.Errorf("tier pane %d of key %q: the store returned a key the scan did not ask for", r.Start, r.Key)
		}
		// Built tier panes are final (tiers.go): cached decoded. A slot
		// the pane predates reads as empty (sketchd.SlotBlob).
		sk, err := q.cache.decode(p.tierPaneID(r.Key, r.Start, s.Granularity), p.agg, sketchd.SlotBlob(&r, ai), true, r.Events, nil)
		if err != nil {
			return fmt.Errorf("tier pane %d of key %q: %w", r.Start, r.Key, err)
		}
		got[i] = append(got[i], tierPane{start: r.Start, v: cached{sk: sk, events: r.Events, panes: 1}})
		return nil
	})
	if err != nil || q.tierSpans == nil {
		return err
	}
	for _, key := range keys {
		starts := make([]int64, 0, len(got[pos[key]]))
		for _, tp := range got[pos[key]] {
			starts = append(starts, tp.start)
		}
		q.tierSpans.put(tierSpanPanesKey{stream: p.target.ID, gen: p.gen, tier: s.Granularity, from: s.From, to: s.To, key: key}, starts)
	}
	return nil
}
