package query

import (
	"context"
	"slices"
	"time"

	"github.com/sketchd/sketchd"
)

// Rollup tiers (sketchd.Rollup) in queries. Before selecting keys, the plan
// cuts its scan range into spans, each read at one resolution
// (chooseTiers): coarsest tier first, a tier pane [s, s+G) serves a span
// when the tier is built past it (its cursor: built tier panes are final)
// and it may stand for its panes in the query's windows (the rule of
// blockStandsForPanes: every window that holds one of its panes holds all
// of them). What no tier serves — the ragged edges, the parts not yet
// final, the windows narrower than a tier pane — goes to the next finer
// tier, and what none serves to the stream's own panes, read as before
// (blocks, caches). The result says which resolution served each span.
//
// A tier pane is the merge of the same panes (sketchd.Rollup), so a window
// merges the same data in another grouping: HLL registers, count-min
// counters and reservoir samples come out the same, t-digest quantiles
// within the digest's rank error (TestTierAnswersEqualBase).

// TierReader reads a stream's rollup tiers; store.DB implements it. A
// PaneReader without it answers from the stream's own panes only.
type TierReader interface {
	TierCursor(ctx context.Context, streamID uint32, tier time.Duration) (int64, bool, error)
	TierKeys(ctx context.Context, streamID uint32, tier time.Duration, from, to int64, fn func(key string) error) error
	ScanTierPanes(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error
}

// Span is a part of a result's range read at one resolution: Granularity
// is the stream's own (its panes) or a rollup tier's.
type Span struct {
	From, To    int64 // unix ns
	Granularity int64 // ns
	Tier        bool  // read from a rollup tier
	// Expired: before the horizon of the resolution the planner chose
	// for it (retained.go): neither the stream's own panes nor that tier
	// keeps it any more, so its events are missing from the answer.
	Expired bool
}

// Source names what served the span, as answers say it: "expired",
// "rollup" or "panes".
func (s Span) Source() string {
	switch {
	case s.Expired:
		return "expired"
	case s.Tier:
		return "rollup"
	}
	return "panes"
}

// maxTierPanesPlanned bounds the tier panes one span is planned over: a
// tier finer than that for the range is left to the others.
const maxTierPanesPlanned = 1 << 20

// chooseTiers cuts the scan range into spans (see above). Without tiers
// (or a reader of them) it is one span of the stream's own panes.
func (q *Querier) chooseTiers(ctx context.Context, p *plan) error {
	spec := &p.target.Spec
	gran := int64(spec.Granularity)
	from, to := p.geom.scanFrom(), p.geom.to
	base := []Span{{From: from, To: to, Granularity: gran}}
	tr, ok := q.r.(TierReader)
	if !ok || len(spec.Rollups) == 0 {
		p.spans = base
		return nil
	}
	gaps := [][2]int64{{from, to}}
	var tiers []Span
	for i := len(spec.Rollups) - 1; i >= 0 && len(gaps) > 0; i-- {
		g := int64(spec.Rollups[i].Granularity)
		built, ok, err := tr.TierCursor(ctx, p.target.ID, spec.Rollups[i].Granularity.Std())
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var rest [][2]int64
		for _, gap := range gaps {
			served := p.geom.tierRuns(spec, gap, g, built)
			cur := gap[0]
			for _, r := range served {
				if r[0] > cur {
					rest = append(rest, [2]int64{cur, r[0]})
				}
				tiers = append(tiers, Span{From: r[0], To: r[1], Granularity: g, Tier: true})
				cur = r[1]
			}
			if cur < gap[1] {
				rest = append(rest, [2]int64{cur, gap[1]})
			}
		}
		gaps = rest
	}
	spans := tiers
	for _, gap := range gaps {
		spans = append(spans, Span{From: gap[0], To: gap[1], Granularity: gran})
	}
	slices.SortFunc(spans, func(a, b Span) int { return int(max(-1, min(1, a.From-b.From))) })
	p.spans = spans
	return nil
}

// tierRuns returns the runs of [gap) that tier panes of width g, built up
// to built, may serve: each tier pane in the gap, built, whose base panes
// all lie in the same windows. Adjacent panes make one run.
func (g geometry) tierRuns(spec *sketchd.Stream, gap [2]int64, w, built int64) [][2]int64 {
	gran := int64(spec.Granularity)
	first := floorDiv(gap[0]+w-1, w) * w
	end := min(gap[1], built)
	if end-first < w || (end-first)/w > maxTierPanesPlanned {
		return nil
	}
	var runs [][2]int64
	for s := first; s+w <= end; s += w {
		lo, hi := g.windowsOf(s)
		lastLo, lastHi := g.windowsOf(s + w - gran)
		if lo >= hi || lo != lastLo || hi != lastHi {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1][1] == s {
			runs[n-1][1] = s + w
		} else {
			runs = append(runs, [2]int64{s, s + w})
		}
	}
	return runs
}

// baseRanges are the spans read from the stream's own panes.
func (p *plan) baseRanges() [][2]int64 {
	var out [][2]int64
	for _, s := range p.spans {
		if !s.Tier {
			out = append(out, [2]int64{s.From, s.To})
		}
	}
	return out
}

// spanKeys calls fn for each key with a pane in one of the spans, from the
// key index of the span's resolution; a key may come more than once.
func (q *Querier) spanKeys(ctx context.Context, p *plan, fn func(key string) error) error {
	tr, _ := q.r.(TierReader)
	for _, s := range p.spans {
		if err := q.spanKeysCached(ctx, tr, p, s, fn); err != nil {
			return err
		}
	}
	return nil
}

// allKeys calls fn for each key with a pane in [from, to) in the stream's
// own key index or in one of its tiers' (which may keep keys longer); a key
// may come more than once.
func (q *Querier) allKeys(ctx context.Context, t Target, from, to int64, fn func(key string) error) error {
	if err := q.reader(t).Keys(ctx, t.ID, from, to, fn); err != nil {
		return err
	}
	tr, ok := q.r.(TierReader)
	if !ok {
		return nil
	}
	for _, r := range t.Spec.Rollups {
		if err := tr.TierKeys(ctx, t.ID, r.Granularity.Std(), from, to, fn); err != nil {
			return err
		}
	}
	return nil
}

// paneSlots is the number of pane slots the spans read per key.
func (p *plan) paneSlots() int64 {
	var n int64
	for _, s := range p.spans {
		n += (s.To - s.From) / s.Granularity
	}
	return n
}

// scanTiers reads the tier spans: each tier pane of a selected key goes to
// its windows, whole, in the order of p.keys and then of the panes'
// starts, whether it came from the caches or the store. Keys whose panes in
// a span are all cached (tierspan.go) are not read from the store.
func (q *Querier) scanTiers(ctx context.Context, p *plan, w *windows) error {
	tr, _ := q.r.(TierReader)
	for _, s := range p.spans {
		if !s.Tier || len(p.keys) == 0 {
			continue
		}
		got := make([][]tierPane, len(p.keys))
		var read []string
		pos := map[string]int{}
		for i, key := range p.keys {
			if panes, ok := q.tierPanesCached(p, s, key); ok {
				got[i] = panes
				continue
			}
			read = append(read, key)
			pos[key] = i
		}
		if len(read) > 0 {
			if err := q.scanTierSpan(ctx, tr, p, s, read, pos, got); err != nil {
				return err
			}
		}
		for i, key := range p.keys {
			ki := p.keyIndex[key]
			for _, tp := range got[i] {
				w.panes++
				w.add(ki, tp.start, tp.v)
			}
		}
	}
	return nil
}

// clipRanges returns the parts of ranges inside the base ranges (both
// sorted, disjoint).
func clipRanges(ranges, base [][2]int64) [][2]int64 {
	var out [][2]int64
	for _, r := range ranges {
		for _, b := range base {
			lo, hi := max(r[0], b[0]), min(r[1], b[1])
			if lo < hi {
				out = append(out, [2]int64{lo, hi})
			}
		}
	}
	return out
}

// inBase reports whether [from, to) lies inside one base range.
func inBase(base [][2]int64, from, to int64) bool {
	for _, b := range base {
		if b[0] <= from && to <= b[1] {
			return true
		}
	}
	return false
}
