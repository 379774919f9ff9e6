package query

import "context"

// Cost is what one computation of a query is estimated to do, known
// before it reads or decodes any pane (cost.go).
type Cost struct {
	// Reads: the stored sketches it reads, keys × pane slots of its
	// planned scans plus keys × tier panes (each decoded and merged).
	Reads int64
	// Bytes: the memory it holds (cost.bytes: the sketches held at once ×
	// the stream's average sketch size, plus its output windows).
	Bytes int64
}

// Units is the cost in one unit: one per sketch read plus one per KiB
// held. Decoding and merging a pane has a fixed part (about 3 µs for a
// one-minute HLL pane) and a part that grows with its size (an hourly
// tier pane of the same stream takes 20 µs), so neither count alone ranks
// queries by the CPU they take.
func (c Cost) Units() int64 { return c.Reads + c.Bytes>>10 }

// CostHook is called by each computation of a query whose context carries
// it (WithCostHook), before the computation reads or decodes any pane,
// with its estimated cost. Answers from the caches never call it; a
// question that computes in several parts (the pieces of unaligned
// windows, an edge window) calls it once per part. An error refuses the
// computation and is returned by the query as it is. The API admits
// computations by their cost with it (internal/api/lanes.go).
type CostHook func(ctx context.Context, c Cost) error

type costHookKey struct{}

// WithCostHook returns ctx carrying h.
func WithCostHook(ctx context.Context, h CostHook) context.Context {
	return context.WithValue(ctx, costHookKey{}, h)
}

// admitCost calls the hook of ctx, if any, with the cost c.
func admitCost(ctx context.Context, c cost) error {
	if h, _ := ctx.Value(costHookKey{}).(CostHook); h != nil {
		return h(ctx, Cost{Reads: c.reads, Bytes: c.bytes()})
	}
	return nil
}
