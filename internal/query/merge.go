package query

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/sketchd/sketchd/sketch"
)

// windows collects what each window of each group covers: decoded panes
// and rollup blocks, shared and read only, merged once at the end
// (mergeWindows) with sketch.MergeAll, which is much cheaper than one Merge
// per pane (a t-digest compresses once, sparse HLLs union their keys once,
// count-min ranks its candidates once).
type windows struct {
	geom     geometry
	keyGroup []int      // key index -> group index (plan.keyGroup)
	acc      [][]winAcc // group -> window
	panes    int        // stored panes collected, each counted once
}

func newWindows(p *plan) *windows {
	acc := make([][]winAcc, len(p.groups))
	for i := range acc {
		acc[i] = make([]winAcc, p.geom.n)
	}
	return &windows{geom: p.geom, keyGroup: p.keyGroup, acc: acc}
}

// add gives v, a decoded pane or block of key ki starting at start, to every
// window that contains it.
func (w *windows) add(ki int, start int64, v cached) {
	lo, hi := w.geom.windowsOf(start)
	row := w.acc[w.keyGroup[ki]]
	for i := lo; i < hi; i++ {
		row[i].add(v, ki, start)
	}
}

// mergeWindows merges what each window collected into its sketch and
// returns the result, groups in group_by order.
func (p *plan) mergeWindows(ctx context.Context, w *windows) (*Result, error) {
	spec := &p.target.Spec
	for gi := range p.groups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wins := make([]Window, p.geom.n)
		for i := range wins {
			win, wa := &wins[i], &w.acc[gi][i]
			win.Start, win.End = p.geom.bounds(i)
			win.Final = spec.WindowFinalAt(win.End, p.target.Watermark)
			win.Events, win.Panes = wa.events, wa.panes
			if i%64 == 63 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			var err error
			if win.Sketch, err = wa.result(p.mergeParams()); err != nil {
				return nil, fmt.Errorf("merge window %d: %w", win.Start, err)
			}
		}
		p.groups[gi].Windows = wins
		w.acc[gi] = nil
	}
	slices.SortFunc(p.groups, func(a, b Group) int { return compareKeys(p.sel.groupBy, a.Key, b.Key) })
	return &Result{
		Aggregate: p.agg.name, Kind: p.agg.kind, Params: p.agg.params,
		From: p.geom.scanFrom(), To: p.geom.to, Step: p.geom.step, Window: p.geom.window,
		Watermark: p.target.Watermark, Keys: len(p.keys), Panes: w.panes,
		Groups: p.groups, Resolution: p.resolution(),
	}, nil
}

// mergeParams are the parameters p's windows are merged at (plan.merge).
func (p *plan) mergeParams() sketch.Params {
	if p.merge != nil {
		return *p.merge
	}
	return p.agg.params
}

// winAcc accumulates one window: the decoded panes and blocks it covers
// (shared, read only), merged at the end in (key, start) order, so that an
// result does not depend on the order the scan met them in, nor on which
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
	sum, err := mergeAt(p, srcs)
	if err != nil {
		return nil, err
	}
	a.parts = nil
	return sum, nil
}

// mergeAt merges srcs (read only) into a new sketch: a clone of the first
// merged with the others, or, for t-digests kept at another compression
// than p's (plan.merge), an empty digest of p's merged with them all.
func mergeAt(p sketch.Params, srcs []sketch.Sketch) (sketch.Sketch, error) {
	var sum sketch.Sketch
	var err error
	if td, ok := srcs[0].(*sketch.TDigest); ok && td.Params().Compression != p.Compression {
		if sum, err = sketch.New(p); err == nil {
			err = mergeFiner(sum, srcs)
		}
	} else {
		sum = srcs[0].Clone()
		err = sketch.MergeAll(sum, srcs[1:]...)
	}
	if err != nil {
		return nil, err
	}
	settle(sum)
	return sum, nil
}

// settle flushes a merged t-digest's buffer: each answer read from a
// digest with a buffer sorts it again (a cached window's, once per
// question), and every merged window is flushed alike, so that an answer
// does not depend on whether its windows came from the cache.
func settle(sk sketch.Sketch) {
	if td, ok := sk.(*sketch.TDigest); ok {
		td.Flush()
	}
}

// mergeFiner is sketch.MergeAll, t-digests of any compression included
// (sketch.TDigest.MergeFiner).
func mergeFiner(dst sketch.Sketch, srcs []sketch.Sketch) error {
	td, ok := dst.(*sketch.TDigest)
	if !ok {
		return sketch.MergeAll(dst, srcs...)
	}
	ds := make([]*sketch.TDigest, len(srcs))
	for i, s := range srcs {
		if ds[i], ok = s.(*sketch.TDigest); !ok {
			return fmt.Errorf("merge a %T into a t-digest", s)
		}
	}
	return td.MergeFiner(ds...)
}
