package query

import (
	"cmp"
	"context"
	"encoding/binary"
	"math"
	"slices"

	"github.com/sketchd/sketchd/sketch"
)

// Pieces: final windows that do not start on a multiple of their width.
// "The last hour" at a 5-minute step, "the last day" at an hour or "the
// last 30 days" at a day are anchored at a from that moves with the clock,
// a pane a minute: each minute every window of such a series is a window
// the window cache has never held, and every window was merged again from
// every key's panes and blocks (the once-a-minute spike of the load
// runner, BenchmarkDashboardMinuteMove). The same holds for the final part
// of an edge window (edgewin.go), whose start moves with from and whose
// end moves with the tail.
//
// So such a range is cut into aligned pieces (cutPieces): at each point
// the widest of the piece widths (the pane, the rollup block, each rollup
// tier's pane, and the doublings between them) that starts there and
// fits. A piece is final and aligned,
// so it never changes and the next minute's windows are made of nearly the
// same ones: each piece is computed once, as a window of a tumbling series
// of its width (one compute per run of adjacent pieces of one width), and
// kept in the window cache under the query's shape without its width
// (pieceShape); a window is then the merge of its pieces per group, a
// merge of group sketches instead of keys × panes.
//
// Whether a window is cut into pieces depends only on its geometry, never
// on what the cache holds, so an answer is the same cold or hot. For the
// kinds whose merges are exact the sketch is the one merging its panes
// gives; a t-digest's pieces are kept at finerCompression times its
// compression, as an edge window's final part is (finerParams), so the
// window's merge compresses about once, as a whole merge does
// (TestPiecesEqualWhole).

// piece is one aligned piece of a range: [start, start+width).
type piece struct{ start, width int64 }

// pieceWidths returns the widths a range of p's stream is cut at,
// ascending, each a multiple of the one before: the pane, the rollup block
// and the rollup tiers' panes, with the doublings between them from the
// block up (doublings).
func (p *plan) pieceWidths() []int64 {
	spec := &p.target.Spec
	ws := []int64{int64(spec.Granularity), p.blockWidth()}
	for _, r := range spec.Rollups {
		ws = append(ws, int64(r.Granularity))
	}
	slices.Sort(ws)
	out := ws[:1]
	for _, w := range ws[1:] {
		if last := out[len(out)-1]; w != last && w%last == 0 {
			out = append(out, w)
		}
	}
	return doublings(out, p.blockWidth(), p.geom.window)
}

// doublings returns ws (ascending, each a multiple of the one before)
// with, after each width w from block up, its doublings 2w, 4w, ... that
// divide the next width, and after the widest those up to half the
// window (a wider one fits in no window that is not aligned).
//
// Why: cutPieces gives each width one stretch, [ceil_W(from), floor_W(to)),
// which is a new piece whenever from crosses a W boundary. Without the
// doublings a window of an hour at an unaligned from held one stretch of
// 3-4 blocks, new at every quarter hour and again the minute after, and
// each new stretch is merged from every key's blocks or panes; a day's
// window held a stretch of 23 tier hours, new every hour. In the load
// runner those recomputes decoded 200-470 thousand sketches in 30 s
// against the 7-22 thousand of the other phases (docs/operations.md,
// "Quarter-hour recomputes"). With the doublings the wide pieces are
// units aligned to their own width, which a move keeps until from enters
// one: then that unit comes back cut finer. A quarter adds one unit per
// hourly window; an hour may break a day window's 8-hour unit, so most of
// its pieces are new then. Per key and minute over two days, with every
// piece kept once cut (TestPiecesMoveReads): a day by hour read 10.3 on
// average and 1,440 at the worst minute as stretches, 4.4 and 720 as
// units; 30 days by day 74.0 and 2,490, 47.6 and 2,010
// (BenchmarkSeriesQuarterMove measures the queries).
func doublings(ws []int64, block, window int64) []int64 {
	out := make([]int64, 0, len(ws)+4)
	for i, w := range ws {
		out = append(out, w)
		if w < block {
			continue
		}
		for d := w; d <= math.MaxInt64/2; {
			d *= 2
			if i+1 < len(ws) {
				if next := ws[i+1]; d >= next || next%d != 0 {
					break
				}
			} else if d > window/2 {
				break
			}
			out = append(out, d)
		}
	}
	return out
}

// cutPieces cuts [from, to), pane-aligned, into pieces, nested: the
// widest width W with a whole W-aligned stretch inside gives that stretch,
// [ceil_W(from), floor_W(to)), as its W-aligned units, one piece each, and
// the ragged parts on either side are cut the same way at the narrower
// widths, down to single panes. With pieceWidths' doublings a stretch is
// at most three units, so a window has one to three pieces per width and
// at most a narrower width's worth of single panes at each ragged end;
// the pieces of a window whose start moved a pane are the same ones but
// for the panes at its ends, and a unit, aligned to its own width, stays a
// piece of the window until the start enters it (and then comes back as
// narrower units and panes). One stretch per width
// as a single piece (until 2026-12-07) was new whenever the start crossed
// its width's boundary: a day's series recomputed each window's 23 tier
// hours every hour, an hourly one its 3-4 blocks every quarter. Units of
// the stream's widths alone, without the doublings, kept 1,189 pieces for
// a 30-day series at a day's step, more than the window cache holds.
func cutPieces(widths []int64, from, to int64) []piece {
	for i := len(widths) - 1; i >= 1; i-- {
		w := widths[i]
		lo, hi := ceilDiv(from, w)*w, floorDiv(to, w)*w
		if lo < hi {
			out := cutPieces(widths[:i], from, lo)
			for s := lo; s < hi; s += w {
				out = append(out, piece{s, w})
			}
			return append(out, cutPieces(widths[:i], hi, to)...)
		}
	}
	var out []piece
	for cur := from; cur < to; cur += widths[0] {
		out = append(out, piece{cur, widths[0]})
	}
	return out
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// piecewise reports whether p's windows are cut into pieces: tumbling and
// cacheable, not starting on a multiple of their width, and then more
// than one piece each.
func (p *plan) piecewise() bool {
	if p.shape == "" || p.family == "" || !p.winCacheable() {
		return false
	}
	w := p.geom.window
	if floorDiv(p.geom.from, w)*w == p.geom.from {
		return false
	}
	return len(cutPieces(p.pieceWidths(), p.geom.from, p.geom.from+w)) > 1
}

// pieceParams are the parameters pieces of p are merged at: the
// aggregate's, finer for the kinds whose merges are approximate. ok is
// false when such a kind cannot be kept finer.
func (p *plan) pieceParams() (*sketch.Params, bool) { return finerParams(p.agg) }

// pieceShape names the pieces of width w of p's family in the window cache.
func (p *plan) pieceShape(w int64) string {
	b := append([]byte(p.family), "\x00piece"...)
	return string(binary.AppendVarint(b, w))
}

// finalPrefixPieced returns the leading final windows of sub (a plan of
// the windows after those the window cache held), each merged from its
// pieces and cached under sub's shape, when sub is cut into pieces.
func (q *Querier) finalPrefixPieced(ctx context.Context, sub *plan) ([]map[string]winGroup, error) {
	if q.wins == nil || !sub.piecewise() {
		return nil, nil
	}
	var ranges [][2]int64
	for i := range sub.geom.n {
		start, end := sub.geom.bounds(i)
		if !sub.target.Spec.WindowFinalAt(end, sub.target.Watermark) {
			break
		}
		ranges = append(ranges, [2]int64{start, end})
	}
	if len(ranges) == 0 {
		return nil, nil
	}
	wins, err := q.mergePieces(ctx, sub, ranges, sub.agg.params)
	if err != nil || wins == nil {
		return nil, err
	}
	for i, groups := range wins {
		q.wins.put(winKey{sub.shape, ranges[i][0]}, groups)
	}
	return wins, nil
}

// mergePieces returns, for each of the final ranges (pane-aligned), each
// group's merge of its pieces at params at; nil when p's aggregate cannot
// be kept in pieces.
func (q *Querier) mergePieces(ctx context.Context, p *plan, ranges [][2]int64, at sketch.Params) ([]map[string]winGroup, error) {
	pp, ok := p.pieceParams()
	if !ok {
		return nil, nil
	}
	widths := p.pieceWidths()
	cuts := make([][]piece, len(ranges))
	var all []piece
	for i, r := range ranges {
		cuts[i] = cutPieces(widths, r[0], r[1])
		all = append(all, cuts[i]...)
	}
	got, err := q.pieces(ctx, p, pp, all)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]winGroup, len(ranges))
	for i, cut := range cuts {
		if out[i], err = mergeGroups(cut, got, at); err != nil {
			return nil, err
		}
		for _, pc := range cut {
			q.stats.pieceMerged.Add(int64(len(got[pc])))
		}
	}
	return out, nil
}

// pieces returns the groups of each of want: from the window cache, or
// computed and cached: a piece of a composed width (composedOf) as the
// merge of its narrower pieces, the others a run of adjacent missing
// pieces of one width at a time.
func (q *Querier) pieces(ctx context.Context, p *plan, pp *sketch.Params, want []piece) (map[piece]map[string]winGroup, error) {
	return q.piecesKept(ctx, p, pp, want, true)
}

// piecesKept is pieces, caching what it computes only when keep is set:
// the narrower pieces a composed piece is merged from are computed for it
// alone, and cached only when a window asks for them (a window's ragged
// ends), so a cold composed piece does not fill the window cache with its
// panes.
func (q *Querier) piecesKept(ctx context.Context, p *plan, pp *sketch.Params, want []piece, keep bool) (map[piece]map[string]winGroup, error) {
	got := make(map[piece]map[string]winGroup, len(want))
	var missing, composed []piece
	widths := p.pieceWidths()
	for _, pc := range want {
		if _, dup := got[pc]; dup {
			continue
		}
		if groups, ok := q.wins.get(winKey{p.pieceShape(pc.width), pc.start}); ok {
			got[pc] = groups
			q.stats.pieceHits.Add(1)
			continue
		}
		got[pc] = nil
		if p.composedOf(widths, pc.width) > 0 {
			composed = append(composed, pc)
		} else {
			missing = append(missing, pc)
		}
	}
	slices.SortFunc(missing, func(a, b piece) int {
		return cmp.Or(cmp.Compare(a.width, b.width), cmp.Compare(a.start, b.start))
	})
	for len(missing) > 0 {
		n := 1
		for n < len(missing) && missing[n].width == missing[0].width && missing[n].start == missing[n-1].start+missing[0].width {
			n++
		}
		run := missing[:n]
		missing = missing[n:]
		w := run[0].width
		c := p.cut(geometry{from: run[0].start, to: run[0].start + int64(n)*w, step: w, window: w, n: n})
		c.shape, c.merge = p.pieceShape(w), pp
		if err := q.chooseTiers(ctx, c); err != nil {
			return nil, err
		}
		res, err := q.compute(ctx, c)
		if err != nil {
			return nil, err
		}
		for i, pc := range run {
			got[pc] = windowGroups(res, i, p.sel.groupBy, false)
			if keep {
				q.wins.put(winKey{c.shape, pc.start}, got[pc])
			}
		}
		q.stats.pieceMisses.Add(int64(n))
	}
	if err := q.composePieces(ctx, p, pp, widths, composed, got, keep); err != nil {
		return nil, err
	}
	return got, nil
}

// composedOf returns the width a piece of width w is merged from, 0 when
// it is computed from the keys' panes, blocks or tier panes. The widths
// from the rollup block up to twice it, below the stream's first rollup
// tier (a quarter and a half hour for one-minute panes and an hourly
// tier), are composed: a block is the merge of its panes' pieces and its
// doubling of its two blocks. At a quarter hour every window of a series
// anchored at now gains a block at its end, whose panes were that
// window's last pieces in the minutes before, so the block is merged from
// the window cache instead of every key's fifteen panes (the quarter-hour
// recompute, docs/operations.md); the pieces a tier serves stay computed
// from it. It depends on the widths alone, never on the cache, so an
// answer is the same cold or hot.
func (p *plan) composedOf(widths []int64, w int64) int64 {
	block := p.blockWidth()
	if w < block || w > 2*block {
		return 0
	}
	for _, r := range p.target.Spec.Rollups {
		if int64(r.Granularity) <= w {
			return 0
		}
	}
	i, ok := slices.BinarySearch(widths, w)
	if !ok || i == 0 {
		return 0
	}
	return widths[i-1]
}

// composePieces computes each of composed as the merge of its pieces of
// the width it is composed of, in order, per group, at the pieces'
// parameters (pp, or the aggregate's), narrower widths first
// (a doubling is merged from blocks composed here too), and caches it when
// keep is set; got gets it. The narrower pieces come from got when the
// windows asked for them too (got holds nil for a piece not had yet), else
// from the window cache or computed.
func (q *Querier) composePieces(ctx context.Context, p *plan, pp *sketch.Params, widths []int64, composed []piece, got map[piece]map[string]winGroup, keep bool) error {
	slices.SortFunc(composed, func(a, b piece) int {
		return cmp.Or(cmp.Compare(a.width, b.width), cmp.Compare(a.start, b.start))
	})
	at := p.agg.params // the kinds whose merges are exact: pp is nil
	if pp != nil {
		at = *pp
	}
	for len(composed) > 0 {
		n := 1
		for n < len(composed) && composed[n].width == composed[0].width {
			n++
		}
		level := composed[:n]
		composed = composed[n:]
		sw := p.composedOf(widths, level[0].width)
		var subs []piece
		for _, pc := range level {
			for s := pc.start; s < pc.start+pc.width; s += sw {
				if sub := (piece{s, sw}); got[sub] == nil {
					subs = append(subs, sub)
				}
			}
		}
		parts, err := q.piecesKept(ctx, p, pp, subs, false)
		if err != nil {
			return err
		}
		for _, pc := range level {
			cut := make([]piece, 0, pc.width/sw)
			for s := pc.start; s < pc.start+pc.width; s += sw {
				sub := piece{s, sw}
				if parts[sub] == nil {
					parts[sub] = got[sub]
				}
				cut = append(cut, sub)
			}
			groups, err := mergeGroups(cut, parts, at)
			if err != nil {
				return err
			}
			got[pc] = groups
			if keep {
				q.wins.put(winKey{p.pieceShape(pc.width), pc.start}, groups)
			}
			q.stats.pieceComposed.Add(1)
		}
	}
	return nil
}

// mergeGroups merges the pieces of one range per group, in order, at
// params at: a group absent from every piece is absent (empty).
func mergeGroups(cut []piece, got map[piece]map[string]winGroup, at sketch.Params) (map[string]winGroup, error) {
	parts := make([]map[string]winGroup, len(cut))
	for i, pc := range cut {
		parts[i] = got[pc]
	}
	return mergeGroupParts(parts, at, false)
}

// mergeGroupParts merges parts (each a sketch per group) per group, in
// order, at params at: a group absent from every part is absent, one
// without a sketch in any is an empty sketch. hllFromEmpty starts the
// merge of two or more HLLs from an empty sketch (mergeParts).
func mergeGroupParts(parts []map[string]winGroup, at sketch.Params, hllFromEmpty bool) (map[string]winGroup, error) {
	type acc struct {
		events uint64
		panes  int
		srcs   []sketch.Sketch
	}
	accs := map[string]*acc{}
	var order []string
	for _, part := range parts {
		for gk, g := range part {
			a, ok := accs[gk]
			if !ok {
				a = &acc{}
				accs[gk] = a
				order = append(order, gk)
			}
			a.events += g.events
			a.panes += g.panes
			if g.sk != nil {
				a.srcs = append(a.srcs, g.sk)
			}
		}
	}
	out := make(map[string]winGroup, len(accs))
	for _, gk := range order {
		a := accs[gk]
		var sk sketch.Sketch
		var err error
		switch {
		case len(a.srcs) == 0:
			sk, err = sketch.New(at)
		case hllFromEmpty && len(a.srcs) > 1 && isHLL(a.srcs[0]):
			if sk, err = sketch.New(at); err == nil {
				err = sketch.MergeAll(sk, a.srcs...)
			}
		default:
			sk, err = mergeAt(at, a.srcs)
		}
		if err != nil {
			return nil, err
		}
		warmSketch(sk)
		out[gk] = winGroup{events: a.events, panes: a.panes, sk: sk, id: winIDs.Add(1)}
	}
	return out, nil
}
