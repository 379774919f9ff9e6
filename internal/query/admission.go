package query

import "context"

// CostHook is called by each computation of a query whose context carries
// it (WithCostHook), before the computation reads or decodes any pane, with
// the bytes it is estimated to hold (cost.bytes: its keys × pane slots ×
// the stream's average sketch size, plus its output windows). Answers from
// the caches never call it; a question that computes in several parts (the
// pieces of unaligned windows, an edge window) calls it once per part. An
// error refuses the computation and is returned by the query as it is.
// The API admits computations by their cost with it (internal/api/lanes.go).
type CostHook func(ctx context.Context, bytes int64) error

type costHookKey struct{}

// WithCostHook returns ctx carrying h.
func WithCostHook(ctx context.Context, h CostHook) context.Context {
	return context.WithValue(ctx, costHookKey{}, h)
}

// admitCost calls the hook of ctx, if any, with the bytes of one
// computation.
func admitCost(ctx context.Context, bytes int64) error {
	if h, _ := ctx.Value(costHookKey{}).(CostHook); h != nil {
		return h(ctx, bytes)
	}
	return nil
}
