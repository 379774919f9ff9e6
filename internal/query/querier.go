package query

import (
	"context"
	"errors"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/defaults"
)

// PaneReader reads the stored panes of a stream. store.DB implements it.
type PaneReader interface {
	// Keys calls fn for each key with a pane starting in [from, to).
	Keys(ctx context.Context, streamID uint32, from, to int64, fn func(key string) error) error
	// ScanPanes calls fn for each stored pane of keys starting in [from, to):
	// the panes of a key consecutively, in start order.
	ScanPanes(ctx context.Context, streamID uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error
}

// Options bound the work of one query. Zero (or negative, where a field
// gives negative no meaning) values take the defaults of DefaultOptions.
type Options struct {
	MaxWindows int   // windows per group in a series; default 10,000
	MaxKeys    int   // keys merged; default 100,000
	MaxPanes   int64 // keys × pane slots read; default 5,000,000
	CacheBytes int64 `default:"keep-negative"` // decoded final panes and rollup blocks kept; default 256 MiB; <0 disables
	// ResultEntries and ResultBytes bound the cache of recent results
	// (see Target.LastCommit); defaults 512 and 64 MiB; ResultEntries < 0
	// disables it.
	ResultEntries int `default:"keep-negative"`
	ResultBytes   int64
	// MaxOutputWindows bounds the windows of one result over all its
	// groups (groups × windows per group), checked from the key index;
	// default 100,000. MaxQueryBytes bounds the memory one query is
	// estimated to hold (see cost), checked from its planned scans; default
	// 256 MiB. Both before any pane is read.
	MaxOutputWindows int
	MaxQueryBytes    int64
	// TotalQueryBytes is the memory all running queries may hold together,
	// by the same estimate; default 512 MiB; <0 = no server-wide budget. A
	// query waits up to BudgetWait (default 1s) for its share, then fails
	// with ErrBusy.
	TotalQueryBytes int64 `default:"keep-negative"`
	BudgetWait      time.Duration
	// WindowCacheBytes bounds the cache of final windows of tumbling series
	// per query shape (see winCache); default 64 MiB; <0 disables it.
	WindowCacheBytes int64 `default:"keep-negative"`
	// AheadJobs bounds the queue of jobs computing a minute ahead what a
	// question anchored at now will take from the window cache after its
	// next move (ahead.go); default 256; <0 disables them.
	// AheadDelay is how long after it was queued a job runs at the
	// soonest (at most a quarter of the stream's pane; later when its
	// move is due later: ahead.go's when); default 5s.
	AheadJobs  int `default:"keep-negative"`
	AheadDelay time.Duration
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxWindows: 10_000, MaxKeys: 100_000, MaxPanes: 5_000_000, CacheBytes: 256 << 20,
		ResultEntries: 512, ResultBytes: 64 << 20,
		MaxOutputWindows: 100_000, MaxQueryBytes: 256 << 20, TotalQueryBytes: 512 << 20, BudgetWait: time.Second,
		WindowCacheBytes: 64 << 20, AheadJobs: 256, AheadDelay: 5 * time.Second}
}

// Querier composes stored panes into windows. It is safe for concurrent use.
type Querier struct {
	r       PaneReader
	opts    Options
	cache   *paneCache
	results *resultCache // nil when disabled
	wins    *winCache    // nil when disabled
	budget  *budget
	sizes   sizes
	stats   counters
	gens    generations // per stream; in every cache key (Forget)
	// tierKeys: the keys of spans, final or per commit (keycache.go).
	tierKeys *tierKeyCache
	// tierSpans: which tier panes each key has in a built span (tierspan.go).
	tierSpans *tierSpanCache
	// tails: the open panes read since the last commit (tailmemo.go).
	tails *tailMemo
	// ahead: the jobs computing the next minute's windows (ahead.go);
	// nil when disabled.
	ahead *aheadWorker
}

// New returns a Querier reading through r.
func New(r PaneReader, opts Options) *Querier {
	opts = defaults.Fill(opts, DefaultOptions())
	q := &Querier{r: r, opts: opts, cache: newPaneCache(opts.CacheBytes),
		budget: newBudget(opts.TotalQueryBytes, opts.BudgetWait), wins: newWinCache(opts.WindowCacheBytes),
		tierKeys:  newBoundedMap[tierSpanKey, []string](opts.CacheBytes, maxTierSpans),
		tierSpans: newBoundedMap[tierSpanPanesKey, []int64](opts.CacheBytes, maxTierSpanEntries),
		tails:     newTailMemo(opts.CacheBytes / 4)}
	if opts.ResultEntries > 0 {
		q.results = newResultCache(opts.ResultEntries, opts.ResultBytes)
	}
	q.ahead = newAheadWorker(q, opts.AheadJobs, opts.AheadDelay)
	return q
}

// Close stops the background work of q (the ahead jobs: a running one is
// cancelled, queued ones dropped) and waits for it. Queries still work
// after it, without that work. Idempotent.
func (q *Querier) Close() { q.ahead.close() }

// Query runs qu against t. The Result and its sketches are the caller's.
// A result cached for the same target state is copied, and concurrent
// identical queries run once.
func (q *Querier) Query(ctx context.Context, t Target, qu Query) (*Result, error) {
	if err := t.covered(); err != nil {
		return nil, err
	}
	if q.results == nil || t.LastCommit == 0 {
		return q.query(ctx, t, qu, false)
	}
	g, err := newGeometry(&t.Spec, qu, q.opts.MaxWindows)
	if err != nil {
		return nil, err
	}
	return q.results.do(ctx, withGeneration(q.resultKey(t, qu, g), q.gens.get(t.ID)), func(ctx context.Context) (*Result, error) {
		return q.query(ctx, t, qu, false)
	})
}

// query computes the result of qu in named steps around one plan: select
// keys, take the leading final windows the window cache holds, then plan
// scans, scan and merge windows for the rest (see plan), and cache its
// final windows. A shared result may hold the window cache's sketches
// (QueryShared).
func (q *Querier) query(ctx context.Context, t Target, qu Query, shared bool) (*Result, error) {
	p, err := q.compile(t, qu)
	if err != nil {
		return nil, err
	}
	p.shared = shared
	if err := q.chooseTiers(ctx, p); err != nil {
		return nil, err
	}
	if err := q.selectKeys(ctx, p); err != nil {
		return nil, err
	}
	res, err := q.answer(ctx, p)
	if err != nil {
		return nil, err
	}
	p.finish(res)
	return res, nil
}

// compute runs the scan steps of p: plan scans; then, with the memory the
// plan is estimated to hold checked against max_query_bytes and reserved
// in the server's budget, scan and merge windows.
func (q *Querier) compute(ctx context.Context, p *plan) (*Result, error) {
	w := newWindows(p)
	if err := q.planScans(ctx, p, w); err != nil {
		return nil, err
	}
	p.estimateHeld()
	if err := q.refineHeld(ctx, p); err != nil {
		return nil, err
	}
	if err := p.cost.checkBytes(&q.opts); err != nil {
		return nil, err
	}
	release, err := q.budget.acquire(ctx, p.cost)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := q.scan(ctx, p, w); err != nil {
		return nil, err
	}
	if err := q.scanTiers(ctx, p, w); err != nil {
		return nil, err
	}
	return p.mergeWindows(ctx, w)
}

// Keys lists the keys with a pane in [from, to) that match where, as
// dimension maps, up to limit (0 = no limit). It reports whether the list was
// cut at the limit.
func (q *Querier) Keys(ctx context.Context, t Target, from, to int64, where map[string][]string, limit int) ([]map[string]string, bool, error) {
	return q.KeysFiltered(ctx, t, from, to, filtersOf(where), limit)
}

// KeysFiltered is Keys with where filters (see ParseWhere).
func (q *Querier) KeysFiltered(ctx context.Context, t Target, from, to int64, filters []Filter, limit int) ([]map[string]string, bool, error) {
	if err := t.covered(); err != nil {
		return nil, false, err
	}
	sel, err := newSelector(t.Spec.GroupBy, filters, t.Spec.GroupBy)
	if err != nil {
		return nil, false, err
	}
	var out []map[string]string
	truncated := false
	errStop := errors.New("stop")
	var seen map[string]bool // a key may be in several tiers' indexes
	if len(t.Spec.Rollups) > 0 {
		seen = map[string]bool{}
	}
	err = q.allKeys(ctx, t, from, to, func(key string) error {
		if seen != nil {
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		_, vals, ok := sel.match(key)
		if !ok {
			return nil
		}
		if limit > 0 && len(out) >= limit {
			truncated = true
			return errStop
		}
		out = append(out, vals)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, false, err
	}
	if !truncated {
		if err := sel.misread(); err != nil {
			return nil, false, err
		}
	}
	return out, truncated, nil
}
