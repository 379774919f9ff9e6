package query

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// PaneReader reads the stored panes of a stream. store.DB implements it.
type PaneReader interface {
	// Keys calls fn for each key with a pane starting in [from, to).
	Keys(ctx context.Context, streamID uint32, from, to int64, fn func(key string) error) error
	// ScanPanes calls fn for each stored pane of keys starting in [from, to).
	ScanPanes(ctx context.Context, streamID uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error
}

// Query errors.
var (
	// ErrUnknownAggregate: the stream has no aggregate of that name.
	ErrUnknownAggregate = errors.New("unknown aggregate")
	// ErrTooLarge: the query exceeds a limit (see *LimitError).
	ErrTooLarge = errors.New("query too large")
)

// ParamError is a query parameter that does not parse or does not fit.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return "parameter " + e.Param + ": " + e.Msg }

// LimitError says which limit a query exceeded. It wraps ErrTooLarge.
type LimitError struct {
	Limit string // "max_windows", "max_keys" or "max_panes"
	Max   int64
	Got   int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("query too large: %s is %d, this query needs %d", e.Limit, e.Max, e.Got)
}

func (e *LimitError) Unwrap() error { return ErrTooLarge }

// Options bound the work of one query. Zero values take the defaults of
// DefaultOptions.
type Options struct {
	MaxWindows int   // windows per group in a series; default 10,000
	MaxKeys    int   // keys merged; default 100,000
	MaxPanes   int64 // keys × pane slots read; default 5,000,000
	CacheBytes int64 // decoded final panes and rollup blocks kept; default 256 MiB; <0 disables
	// ResultEntries and ResultBytes bound the cache of recent answers
	// (see Target.Version); defaults 512 and 64 MiB; ResultEntries < 0
	// disables it.
	ResultEntries int
	ResultBytes   int64
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxWindows: 10_000, MaxKeys: 100_000, MaxPanes: 5_000_000, CacheBytes: 256 << 20,
		ResultEntries: 512, ResultBytes: 64 << 20}
}

// Querier composes stored panes into windows. It is safe for concurrent use.
type Querier struct {
	r       PaneReader
	opts    Options
	cache   *paneCache
	results *resultCache // nil when disabled
}

// New returns a Querier reading through r.
func New(r PaneReader, opts Options) *Querier {
	def := DefaultOptions()
	if opts.MaxWindows <= 0 {
		opts.MaxWindows = def.MaxWindows
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = def.MaxKeys
	}
	if opts.MaxPanes <= 0 {
		opts.MaxPanes = def.MaxPanes
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = def.CacheBytes
	}
	if opts.ResultEntries == 0 {
		opts.ResultEntries = def.ResultEntries
	}
	if opts.ResultBytes <= 0 {
		opts.ResultBytes = def.ResultBytes
	}
	q := &Querier{r: r, opts: opts, cache: newPaneCache(opts.CacheBytes)}
	if opts.ResultEntries > 0 {
		q.results = newResultCache(opts.ResultEntries, opts.ResultBytes)
	}
	return q
}

// Target is the stream a query reads.
type Target struct {
	ID   uint32
	Spec sketchd.Stream
	// Watermark is the committed watermark (unix ns): that of the last
	// checkpoint in the store. Windows that end at least allowed lateness
	// before it are final.
	Watermark int64
	// Version identifies the stored state of the stream: it must change
	// whenever a commit may have changed its panes (the time of the last
	// commit will do). Answers are cached per version; 0 disables caching.
	Version int64
}

// Query asks for one aggregate over a time range.
type Query struct {
	Aggregate string
	From, To  int64               // unix ns; From is rounded down to a pane, To up to a step
	Where     map[string][]string // dimension -> accepted values; all dimensions must match
	GroupBy   []string            // dimensions kept; nil merges all matching keys
	Step      int64               // ns; 0 = one window over the whole range
	Window    int64               // ns; 0 = Step; wider than Step = sliding
}

// Result is the answer of a query.
type Result struct {
	Aggregate string
	Kind      sketchd.AggregateKind
	Params    sketch.Params
	From, To  int64 // the range covered, aligned
	Step      int64
	Window    int64
	Watermark int64
	Keys      int // keys merged
	Panes     int // stored panes merged
	Groups    []Group
}

// Group is the series of one group-by tuple.
type Group struct {
	Key     map[string]string // the group_by dimensions' values
	Windows []Window
}

// Window is one merged window.
type Window struct {
	Start, End int64
	// Final is true when the watermark has passed End by the allowed
	// lateness: no event can change this window any more.
	Final  bool
	Events uint64 // exact count of events in the window
	Panes  int    // stored panes merged into it
	Sketch sketch.Sketch
}

// windowing is the validated geometry of a query.
type windowing struct {
	from, to     int64 // [from, to) output range, a whole number of steps
	step, window int64
	n            int // windows
}

func (w windowing) scanFrom() int64 { return w.from + w.step - w.window }

// windowsOf returns the window indexes [lo, hi) containing a pane start.
func (w windowing) windowsOf(start int64) (int, int) {
	k := int(floorDiv(start-w.from, w.step))
	lo, hi := k, k+int(w.window/w.step)
	return max(lo, 0), min(hi, w.n)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (q *Querier) geometry(spec *sketchd.Stream, qu Query) (windowing, error) {
	g := int64(spec.Granularity)
	if qu.To <= qu.From {
		return windowing{}, &ParamError{"to", "must be after from"}
	}
	from := sketchd.PaneStart(qu.From, g)
	step, window := qu.Step, qu.Window
	if step < 0 {
		return windowing{}, &ParamError{"step", "must not be negative"}
	}
	if window < 0 {
		return windowing{}, &ParamError{"window", "must not be negative"}
	}
	if step == 0 {
		if window != 0 {
			return windowing{}, &ParamError{"window", "needs step"}
		}
		to := sketchd.PaneStart(qu.To-1, g) + g
		return windowing{from: from, to: to, step: to - from, window: to - from, n: 1}, nil
	}
	if step%g != 0 {
		return windowing{}, &ParamError{"step", fmt.Sprintf("must be a multiple of the stream granularity %s", spec.Granularity)}
	}
	if window == 0 {
		window = step
	}
	if window%step != 0 {
		return windowing{}, &ParamError{"window", "must be a multiple of step"}
	}
	n := (qu.To - from + step - 1) / step
	if n > int64(q.opts.MaxWindows) {
		return windowing{}, &LimitError{Limit: "max_windows", Max: int64(q.opts.MaxWindows), Got: n}
	}
	return windowing{from: from, to: from + n*step, step: step, window: window, n: int(n)}, nil
}

// Query runs qu against t. The Result and its sketches are the caller's.
func (q *Querier) Query(ctx context.Context, t Target, qu Query) (*Result, error) {
	if q.results == nil || t.Version == 0 {
		return q.query(ctx, t, qu)
	}
	w, err := q.geometry(&t.Spec, qu)
	if err != nil {
		return nil, err
	}
	return q.results.do(ctx, resultKey(t, qu, w), func(ctx context.Context) (*Result, error) {
		return q.query(ctx, t, qu)
	})
}

func (q *Querier) query(ctx context.Context, t Target, qu Query) (*Result, error) {
	spec := &t.Spec
	names := spec.AggregateNames()
	ai, ok := slices.BinarySearch(names, qu.Aggregate)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAggregate, qu.Aggregate)
	}
	agg := spec.Aggregates[qu.Aggregate]
	params, err := agg.SketchParams()
	if err != nil {
		return nil, err
	}
	ap := aggregate{index: ai, name: qu.Aggregate, params: params}
	sel, err := newSelector(spec.GroupBy, qu.Where, qu.GroupBy)
	if err != nil {
		return nil, err
	}
	w, err := q.geometry(spec, qu)
	if err != nil {
		return nil, err
	}
	g := int64(spec.Granularity)
	scanFrom, scanTo := w.scanFrom(), w.to

	// Select the keys and their groups from the key index.
	var keys []string
	groupOf := map[string]int{}
	var groups []Group
	groupIdx := map[string]int{}
	err = q.r.Keys(ctx, t.ID, scanFrom, scanTo, func(key string) error {
		gk, vals, ok := sel.match(key)
		if !ok {
			return nil
		}
		if len(keys) >= q.opts.MaxKeys {
			return &LimitError{Limit: "max_keys", Max: int64(q.opts.MaxKeys), Got: int64(len(keys) + 1)}
		}
		gi, seen := groupIdx[gk]
		if !seen {
			gi = len(groups)
			groupIdx[gk] = gi
			groups = append(groups, Group{Key: vals})
		}
		keys = append(keys, key)
		groupOf[key] = gi
		return nil
	})
	if err != nil {
		return nil, err
	}
	if slots := int64(len(keys)) * ((scanTo - scanFrom) / g); slots > q.opts.MaxPanes {
		return nil, &LimitError{Limit: "max_panes", Max: q.opts.MaxPanes, Got: slots}
	}
	if len(groups) == 0 && len(sel.groupBy) == 0 {
		groups = append(groups, Group{Key: map[string]string{}})
	}

	// Collect what each window covers (decoded panes, and rollup blocks:
	// final blocks come from the cache without reading the store; the panes
	// of missing ones are merged into the block, which is then cached), and
	// merge it once at the end with sketch.MergeAll, which is much cheaper
	// than one Merge per pane (a t-digest compresses once, sparse HLLs union
	// their keys once, count-min ranks its candidates once).
	acc := make([][]winAcc, len(groups))
	for i := range acc {
		acc[i] = make([]winAcc, w.n)
	}
	res := &Result{
		Aggregate: qu.Aggregate, Kind: agg.Sketch, Params: params,
		From: w.from, To: w.to, Step: w.step, Window: w.window,
		Watermark: t.Watermark, Keys: len(keys),
	}
	var blocks []int64
	if q.opts.CacheBytes > 0 && len(keys) > 0 {
		blocks = w.blocks(spec, t.Watermark)
	}
	bw := blockPanes * g
	keyIdx := make(map[string]int, len(keys))
	for i, k := range keys {
		keyIdx[k] = i
	}
	toWindows := func(key string, start int64, v cached) {
		lo, hi := w.windowsOf(start)
		for i := lo; i < hi; i++ {
			acc[groupOf[key]][i].add(v, keyIdx[key], start)
		}
	}

	// Per key: the cached blocks go to their windows; the rest of the range
	// is to be read. Keys with the same ranges to read share the scans.
	type scan struct {
		ranges [][2]int64
		keys   []string
	}
	var scans []*scan
	bySig := map[string]*scan{}
	var sig []byte
	for i, key := range keys {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		var ranges [][2]int64
		cur := scanFrom
		for _, bs := range blocks {
			v, ok := q.cache.get(cacheKey{t.ID, ai, key, bs, true})
			if !ok {
				continue
			}
			if bs > cur {
				ranges = append(ranges, [2]int64{cur, bs})
			}
			cur = bs + bw
			toWindows(key, bs, v)
			res.Panes += v.panes
		}
		if cur < scanTo {
			ranges = append(ranges, [2]int64{cur, scanTo})
		}
		sig = sig[:0]
		for _, r := range ranges {
			sig = binary.AppendVarint(binary.AppendVarint(sig, r[0]), r[1])
		}
		sc, ok := bySig[string(sig)]
		if !ok {
			sc = &scan{ranges: ranges}
			bySig[string(sig)] = sc
			scans = append(scans, sc)
		}
		sc.keys = append(sc.keys, key)
	}

	// open is the block being rebuilt from its panes: ScanPanes delivers
	// the panes of a key consecutively, in start order.
	var open struct {
		on    bool // a block is being rebuilt (its key may be "")
		key   string
		start int64
		acc   winAcc
	}
	built := map[cacheKey]bool{} // blocks rebuilt from panes by this query
	finish := func() error {
		if !open.on {
			return nil
		}
		v := cached{events: open.acc.events, panes: open.acc.panes}
		var err error
		if v.sk, err = open.acc.result(params); err != nil {
			return fmt.Errorf("merge block %d of key %q: %w", open.start, open.key, err)
		}
		k := cacheKey{t.ID, ai, open.key, open.start, true}
		q.cache.put(k, v)
		built[k] = true
		toWindows(open.key, open.start, v)
		open.on, open.key, open.acc = false, "", winAcc{}
		return nil
	}
	for _, sc := range scans {
		for _, rg := range sc.ranges {
			err = q.r.ScanPanes(ctx, t.ID, sc.keys, rg[0], rg[1], func(r sketchd.PaneRecord) error {
				if ai >= len(r.Sketches) {
					return fmt.Errorf("pane %d of key %q: stored pane has %d sketches, want at least %d: %w",
						r.Start, r.Key, len(r.Sketches), ai+1, sketch.ErrCorrupt)
				}
				bs := floorDiv(r.Start, bw) * bw
				if _, in := slices.BinarySearch(blocks, bs); in {
					if !open.on || open.key != r.Key || open.start != bs {
						if err := finish(); err != nil {
							return err
						}
						open.on, open.key, open.start = true, r.Key, bs
					}
					sk, err := ap.decode(r.Sketches[ai])
					if err != nil {
						return fmt.Errorf("pane %d of key %q: %w", r.Start, r.Key, err)
					}
					res.Panes++
					open.acc.add(cached{sk: sk, events: r.Events, panes: 1}, 0, r.Start)
					return nil
				}
				final := spec.PaneFinalAt(r.Start, t.Watermark)
				sk, err := q.cache.decode(cacheKey{t.ID, ai, r.Key, r.Start, false}, ap, r.Sketches[ai], final)
				if err != nil {
					return fmt.Errorf("pane %d of key %q: %w", r.Start, r.Key, err)
				}
				res.Panes++
				toWindows(r.Key, r.Start, cached{sk: sk, events: r.Events, panes: 1})
				return nil
			})
			if err == nil {
				err = finish()
			}
			if err != nil {
				return nil, err
			}
			// Blocks of this range without a stored pane are empty for good.
			for _, bs := range blocks {
				if bs < rg[0] || bs >= rg[1] {
					continue
				}
				for _, key := range sc.keys {
					if k := (cacheKey{t.ID, ai, key, bs, true}); !built[k] {
						q.cache.put(k, cached{})
					}
				}
			}
		}
	}
	for gi := range groups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wins := make([]Window, w.n)
		for i := range wins {
			win, wa := &wins[i], &acc[gi][i]
			win.End = w.from + int64(i+1)*w.step
			win.Start = win.End - w.window
			win.Final = spec.WindowFinalAt(win.End, t.Watermark)
			win.Events, win.Panes = wa.events, wa.panes
			if i%64 == 63 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			if win.Sketch, err = wa.result(params); err != nil {
				return nil, fmt.Errorf("merge window %d: %w", win.Start, err)
			}
		}
		groups[gi].Windows = wins
		acc[gi] = nil
	}
	slices.SortFunc(groups, func(a, b Group) int { return compareKeys(sel.groupBy, a.Key, b.Key) })
	res.Groups = groups
	return res, nil
}

// blockPanes is the width of a rollup block in panes (15 one-minute panes:
// a quarter of an hour, so hours and days are whole blocks).
const blockPanes = 15

// blocks returns the starts of the rollup blocks of the scan range that are
// final at watermark wm and that every window containing one of their
// panes contains whole (so a block's merge can stand for its panes).
func (w windowing) blocks(spec *sketchd.Stream, wm int64) []int64 {
	g := int64(spec.Granularity)
	bw := blockPanes * g
	var out []int64
	for bs := floorDiv(w.scanFrom()+bw-1, bw) * bw; bs <= w.to-bw; bs += bw {
		if !spec.WindowFinalAt(bs+bw, wm) {
			break
		}
		lo, hi := w.windowsOf(bs)
		lo2, hi2 := w.windowsOf(bs + bw - g)
		if lo == lo2 && hi == hi2 && lo < hi {
			out = append(out, bs)
		}
	}
	return out
}

// winAcc accumulates one window: the decoded panes and blocks it covers
// (shared, read only), merged at the end in (key, start) order, so that an
// answer does not depend on the order the scan met them in, nor on which
// blocks the cache held (order matters to a t-digest's compression).
type winAcc struct {
	parts  []part
	events uint64
	panes  int
}

type part struct {
	sk    sketch.Sketch
	key   int // index in the query's keys
	start int64
}

func (a *winAcc) add(v cached, key int, start int64) {
	a.events += v.events
	a.panes += v.panes
	if v.sk != nil {
		a.parts = append(a.parts, part{v.sk, key, start})
	}
}

// result returns the merged sketch (the caller's), or an empty one when
// nothing was added.
func (a *winAcc) result(p sketch.Params) (sketch.Sketch, error) {
	if len(a.parts) == 0 {
		return sketch.New(p)
	}
	slices.SortFunc(a.parts, func(x, y part) int {
		if c := cmp.Compare(x.key, y.key); c != 0 {
			return c
		}
		return cmp.Compare(x.start, y.start)
	})
	srcs := make([]sketch.Sketch, len(a.parts))
	for i, pt := range a.parts {
		srcs[i] = pt.sk
	}
	sum := srcs[0].Clone()
	if err := sketch.MergeAll(sum, srcs[1:]...); err != nil {
		return nil, err
	}
	a.parts = nil
	return sum, nil
}

func compareKeys(dims []string, a, b map[string]string) int {
	for _, d := range dims {
		if c := strings.Compare(a[d], b[d]); c != 0 {
			return c
		}
	}
	return 0
}

// Keys lists the keys with a pane in [from, to) that match where, as
// dimension maps, up to limit (0 = no limit). It reports whether the list was
// cut at the limit.
func (q *Querier) Keys(ctx context.Context, t Target, from, to int64, where map[string][]string, limit int) ([]map[string]string, bool, error) {
	sel, err := newSelector(t.Spec.GroupBy, where, t.Spec.GroupBy)
	if err != nil {
		return nil, false, err
	}
	var out []map[string]string
	truncated := false
	errStop := errors.New("stop")
	err = q.r.Keys(ctx, t.ID, from, to, func(key string) error {
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
	return out, truncated, nil
}

// selector filters keys by where and projects them onto group_by.
type selector struct {
	dims    []string
	where   map[int]map[string]bool // dimension index -> accepted values
	groupBy []string
	gbIdx   []int
}

func newSelector(dims []string, where map[string][]string, groupBy []string) (*selector, error) {
	idx := map[string]int{}
	for i, d := range dims {
		idx[d] = i
	}
	s := &selector{dims: dims, where: map[int]map[string]bool{}, groupBy: groupBy}
	for d, vals := range where {
		i, ok := idx[d]
		if !ok {
			return nil, &ParamError{"where", fmt.Sprintf("%q is not a dimension of the stream (group_by: %s)", d, strings.Join(dims, ", "))}
		}
		set := map[string]bool{}
		for _, v := range vals {
			set[v] = true
		}
		s.where[i] = set
	}
	seen := map[string]bool{}
	for _, d := range groupBy {
		i, ok := idx[d]
		if !ok {
			return nil, &ParamError{"group_by", fmt.Sprintf("%q is not a dimension of the stream (group_by: %s)", d, strings.Join(dims, ", "))}
		}
		if seen[d] {
			return nil, &ParamError{"group_by", fmt.Sprintf("%q listed twice", d)}
		}
		seen[d] = true
		s.gbIdx = append(s.gbIdx, i)
	}
	return s, nil
}

// match decodes key, applies where and returns the group's encoded key and
// dimension map.
func (s *selector) match(key string) (string, map[string]string, bool) {
	vals, err := sketchd.DecodeKey(key)
	if err != nil || len(vals) != len(s.dims) {
		return "", nil, false
	}
	for i, set := range s.where {
		if !set[vals[i]] {
			return "", nil, false
		}
	}
	m := make(map[string]string, len(s.gbIdx))
	g := make([]string, len(s.gbIdx))
	for j, i := range s.gbIdx {
		m[s.dims[i]] = vals[i]
		g[j] = vals[i]
	}
	return sketchd.EncodeKey(g...), m, true
}
