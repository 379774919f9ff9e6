package query

import (
	"context"
	"errors"
	"time"

	"github.com/sketchd/sketchd"
)

// The slot estimate of cost (estimateHeld) counts every pane slot of every
// key the plan reads, stored or not, at the average stored size of the
// aggregate's sketches. For sparse data — a long range of a stream whose
// keys each have a pane every few minutes, a 30-day range whose window
// edges fall inside tier panes and so read base panes — most slots hold no
// pane and the estimate is tens of times the memory the query holds. When
// it passes a quarter of max_query_bytes, refineHeld replaces it by the
// stored sizes of the panes the plan reads (a read of the blobs, no
// decode) for a sample of its keys (measureKeys of each scan, every key
// when fewer), scaled to all of them, and stops as soon as that passes the
// limit: a query is still refused before anything is decoded. Reading
// every key's blobs made this pass 15% of sketchd's CPU at load (the
// full runner's profile): the scan reads them again right after.

// measureFraction: estimates above MaxQueryBytes/measureFraction are
// measured.
const measureFraction = 4

// measureKeys is the sample of keys per scan whose panes are measured.
const measureKeys = 8

var errMeasured = errors.New("measured past the limit")

// refineHeld measures the plan's held bytes when the slot estimate is
// large (see above).
func (q *Querier) refineHeld(ctx context.Context, p *plan) error {
	if p.cost.bytes() <= q.opts.MaxQueryBytes/measureFraction {
		return nil
	}
	out := p.cost.outputWindows() * (p.cost.avg + partBytes)
	limit := q.opts.MaxQueryBytes - out
	var sum int64 // scaled to all keys
	ai := p.agg.index
	scale := int64(1)
	add := func(r sketchd.PaneRecord) error {
		if blob := sketchd.SlotBlob(&r, ai); blob != nil {
			sum += (int64(len(blob)) + partBytes) * scale
		}
		if sum > limit {
			return errMeasured
		}
		return nil
	}
	sample := func(keys []string) []string {
		n := min(len(keys), measureKeys)
		scale = int64((len(keys) + n - 1) / max(n, 1))
		return keys[:n]
	}
	err := q.measureBase(ctx, p, sample, add)
	if err == nil {
		err = q.measureTiers(ctx, p, sample, add)
	}
	switch {
	case errors.Is(err, errMeasured):
		p.cost.measured = sum + 1 // past the limit: refused
	case err != nil:
		return err
	default:
		p.cost.measured = sum
	}
	p.cost.isMeasured = true
	return nil
}

func (q *Querier) measureBase(ctx context.Context, p *plan, sample func([]string) []string, fn func(sketchd.PaneRecord) error) error {
	for _, sc := range p.scans {
		keys := sample(sc.keys)
		for _, rg := range sc.ranges {
			if err := q.scanSlot(ctx, p, keys, rg[0], rg[1], fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (q *Querier) measureTiers(ctx context.Context, p *plan, sample func([]string) []string, fn func(sketchd.PaneRecord) error) error {
	tr, _ := q.r.(TierReader)
	for _, s := range p.spans {
		if !s.Tier || len(p.keys) == 0 {
			continue
		}
		if err := q.scanTierSlot(ctx, tr, p, time.Duration(s.Granularity), sample(p.keys), s.From, s.To, fn); err != nil {
			return err
		}
	}
	return nil
}

// tierHeld is the number of tier panes the plan's tier spans read: keys ×
// tier panes (each held until its windows merge).
func (p *plan) tierHeld() int64 {
	var n int64
	for _, s := range p.spans {
		if s.Tier {
			n += int64(len(p.keys)) * ((s.To - s.From) / s.Granularity)
		}
	}
	return n
}
