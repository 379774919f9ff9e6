package query

import (
	"context"
	"fmt"
	"slices"
)

// QueryMulti answers several aggregates of one stream over the same range,
// filters, grouping and windows (qu's; its Aggregate is ignored) with one
// scan of the key index: the tiers that serve the range are chosen and the
// keys and groups selected once and shared, then each aggregate's panes
// (and tier panes) are read and merged as Query does. Each
// result equals Query's for that aggregate, and is computed as Query's
// is (answer: the window cache, the cost check and the memory budget) but
// without the result cache.
func (q *Querier) QueryMulti(ctx context.Context, t Target, qu Query, aggregates []string) ([]*Result, error) {
	return q.queryMulti(ctx, t, qu, aggregates, false)
}

// queryMulti is QueryMulti; shared results may hold the window cache's
// sketches (QueryMultiShared).
func (q *Querier) queryMulti(ctx context.Context, t Target, qu Query, aggregates []string, shared bool) ([]*Result, error) {
	if err := t.covered(); err != nil {
		return nil, err
	}
	if len(aggregates) == 0 {
		return nil, &ParamError{"aggregate", "name at least one aggregate"}
	}
	plans := make([]*plan, len(aggregates))
	for i, a := range aggregates {
		if slices.Contains(aggregates[:i], a) {
			return nil, &ParamError{"aggregate", fmt.Sprintf("%q listed twice", a)}
		}
		qu.Aggregate = a
		p, err := q.compile(t, qu)
		if err != nil {
			return nil, err
		}
		p.shared = shared
		plans[i] = p
	}
	first := plans[0]
	if err := q.chooseTiers(ctx, first); err != nil { // the same for every aggregate
		return nil, err
	}
	if err := q.selectKeys(ctx, first); err != nil {
		return nil, err
	}
	for _, p := range plans[1:] {
		p.spans = first.spans
		p.keys, p.keyIndex, p.keyGroup = first.keys, first.keyIndex, first.keyGroup
		p.groups = slices.Clone(first.groups) // mergeWindows sorts and fills its own
		p.cost = first.cost
		p.cost.avg = q.sizes.avg(p.target.ID, p.agg.index)
	}
	out := make([]*Result, len(plans))
	for i, p := range plans {
		res, err := q.answer(ctx, p) // window cache, cost check and budget as Query
		if err != nil {
			return nil, err
		}
		p.finish(res)
		out[i] = res
	}
	return out, nil
}
