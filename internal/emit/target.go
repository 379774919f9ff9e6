package emit

import (
	"context"
	"errors"
	"fmt"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// step publishes what target t has to publish under the stream status st,
// in window order, each pass from its cursor:
//
//  1. final: the windows final at the committed watermark (end + allowed
//     lateness ≤ it), each group's answer with final true;
//  2. close (trigger close): the windows closed (end ≤ committed watermark)
//     but not final, with update false;
//  3. late (trigger close): when the committed count of late events has
//     changed, the closed windows that are not final again; a group whose
//     event count changed is published with update true.
//
// A pass stores its cursor once NATS has confirmed its messages, so a
// crash repeats at most the batch in progress, under the same message ids.
func (t *target) step(ctx context.Context, st *sketchd.StreamStatus) error {
	wm := st.CommittedWatermark
	if st.ID != t.e.id || wm == sketchd.NoTime {
		return nil
	}
	if err := t.prepare(ctx); err != nil {
		return err
	}
	if ok, err := t.load(ctx); !ok || err != nil {
		return err
	}
	w := int64(t.spec.Window)
	closeLimit := sketchd.PaneStart(wm, w)
	finalLimit := sketchd.PaneStart(t.e.spec.FinalEnd(wm), w)
	t.backlog.Store(max(0, (finalLimit-t.cur.finalTo)/w))
	tgt := query.TargetOf(st)
	for t.cur.finalTo < finalLimit {
		hi := min(finalLimit, t.cur.finalTo+int64(t.batch)*w)
		n, sent, err := t.publishRange(ctx, tgt, t.cur.finalTo, hi, passFinal)
		if err != nil {
			return err
		}
		hi = t.cur.finalTo + int64(n)*w
		if sent == 0 {
			if hi, err = t.skipEmpty(ctx, hi, finalLimit); err != nil {
				return err
			}
		}
		c := t.cur
		c.finalTo = hi
		c.closedTo = max(c.closedTo, hi)
		if err := t.save(ctx, c); err != nil {
			return err
		}
		t.backlog.Store(max(0, (finalLimit-t.cur.finalTo)/w))
	}
	for k := range t.seen {
		if k.start < t.cur.finalTo {
			delete(t.seen, k)
		}
	}
	if t.spec.Trigger != sketchd.EmitOnClose {
		t.succeeded()
		return nil
	}
	if err := t.latePass(ctx, tgt); err != nil {
		return err
	}
	for t.cur.closedTo < closeLimit {
		hi := min(closeLimit, t.cur.closedTo+int64(t.batch)*w)
		n, sent, err := t.publishRange(ctx, closeTarget(tgt), t.cur.closedTo, hi, passClose)
		if err != nil {
			return err
		}
		c := t.cur
		c.closedTo += int64(n) * w
		if sent == 0 {
			if c.closedTo, err = t.skipEmpty(ctx, c.closedTo, closeLimit); err != nil {
				return err
			}
		}
		if err := t.save(ctx, c); err != nil {
			return err
		}
	}
	t.succeeded()
	return nil
}

// latePass republishes the closed windows that late events changed since
// they were published (see step). The committed late count is read before
// the windows, so a late event committed meanwhile is seen next time, and
// the close pass after it reads the store itself too (closeTarget). The
// count the closed windows are up to date with is kept in the cursor: a
// target that starts again with it unchanged publishes none of them again
// (before, every start republished them all). It does not learn what they
// hold (a late event committing while it read them would be learnt and
// never published: commits write panes before their checkpoint), so the
// first late event after a start republishes every closed window, as
// updates, under the same ids when unchanged.
func (t *target) latePass(ctx context.Context, tgt query.Target) error {
	cp, ok, err := t.e.s.db.Checkpoint(ctx, t.e.id)
	if err != nil || !ok {
		return err
	}
	late := cp.Counters.Late
	if t.cur.closedTo <= t.cur.finalTo { // no window closed and not final
		t.lateSeen, t.lateKnown = late, true
		return nil
	}
	if t.lateKnown && late == t.lateSeen {
		return nil
	}
	w := int64(t.spec.Window)
	for lo := t.cur.finalTo; lo < t.cur.closedTo; {
		hi := min(t.cur.closedTo, lo+int64(t.batch)*w)
		n, _, err := t.publishRange(ctx, closeTarget(tgt), lo, hi, passLate)
		if err != nil {
			return err
		}
		lo += int64(n) * w
	}
	t.lateSeen, t.lateKnown = late, true
	return t.save(ctx, t.cur) // a start then knows the closed windows are up to date
}

// closeTarget is tgt for the late and close passes, which follow a read of
// the committed late count: the checkpoint may be newer than the status tgt
// was built from, so they ask the store itself (no last commit: no answer,
// result or tail cached for an older state), or a window would be
// published, and its late count recorded, without a late event that count
// holds, and its update never asked again.
func closeTarget(tgt query.Target) query.Target {
	tgt.LastCommit = 0
	return tgt
}

// skipEmpty returns where a pass that found no data before from may go on:
// the window of the next stored pane at or after from, or limit when that
// is later (a quiet stream, or data past retention, costs one key-index
// look instead of a query per batch).
func (t *target) skipEmpty(ctx context.Context, from, limit int64) (int64, error) {
	next, ok, err := t.e.s.db.FirstPaneAfter(ctx, t.e.id, 0, from)
	if err != nil {
		return 0, err
	}
	if !ok {
		return limit, nil
	}
	return max(from, min(limit, sketchd.PaneStart(next, int64(t.spec.Window)))), nil
}

// load reads the target's cursor, or starts it at the window of the
// stream's first stored pane; false when there is none yet.
func (t *target) load(ctx context.Context) (bool, error) {
	if t.loaded {
		return true, nil
	}
	db := t.e.s.db
	c, ok, err := db.EmitCursor(ctx, t.e.id, t.spec.Subject)
	if err != nil {
		return false, err
	}
	if !ok {
		first, any, err := db.FirstPaneAfter(ctx, t.e.id, 0, sketchd.NoTime)
		if err != nil || !any {
			return false, err
		}
		s := sketchd.PaneStart(first, int64(t.spec.Window))
		c = store.EmitCursor{ClosedTo: s, FinalTo: s}
	}
	t.setCursor(cursor{c.ClosedTo, c.FinalTo})
	t.lateSeen, t.lateKnown = c.LateSeen, c.LateKnown
	t.loaded = true
	return true, nil
}

func (t *target) setCursor(c cursor) {
	t.cur = c
	t.closedTo.Store(c.closedTo)
	t.finalTo.Store(c.finalTo)
}

// save stores c durably, then makes it the target's cursor.
func (t *target) save(ctx context.Context, c cursor) error {
	sc := store.EmitCursor{ClosedTo: c.closedTo, FinalTo: c.finalTo, LateSeen: t.lateSeen, LateKnown: t.lateKnown}
	if err := t.e.s.db.SetEmitCursor(ctx, t.e.id, t.spec.Subject, sc); err != nil {
		return fmt.Errorf("store the emit cursor: %w", err)
	}
	t.setCursor(c)
	return nil
}

type pass int

const (
	passFinal pass = iota
	passClose
	passLate
)

// publishRange publishes the windows of [lo, hi) for pass p, in window
// order, and waits for NATS to confirm them. It returns how many windows
// it covered (fewer than asked when the query's limits refused the batch
// and it was cut: t.batch halves, down to one window) and how many
// messages it published.
func (t *target) publishRange(ctx context.Context, tgt query.Target, lo, hi int64, p pass) (int, int, error) {
	w := int64(t.spec.Window)
	idx, hi := t.answering(lo, hi)
	names := make([]string, len(idx))
	for i, a := range idx {
		names[i] = t.plan.Aggregates[a]
	}
	for {
		n := int((hi - lo) / w)
		if len(names) == 0 {
			return n, 0, nil
		}
		res, err := t.e.s.querier.QueryMulti(ctx, tgt, query.Query{
			From: lo, To: hi, GroupBy: t.e.spec.EmitGroupBy(&t.spec), Step: w, Window: w,
		}, names)
		var le *query.LimitError
		if errors.As(err, &le) && n > 1 {
			t.batch = max(1, n/2)
			hi = lo + int64(t.batch)*w
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("query [%s, %s): %w", fmtTime(lo), fmtTime(hi), err)
		}
		msgs, err := t.render(tgt, res, idx, lo, n, p)
		if err != nil {
			return 0, 0, err
		}
		if err := t.publish(ctx, msgs); err != nil {
			t.ready = false // look for the target stream again (it may have been deleted)
			return 0, 0, err
		}
		for _, m := range msgs {
			if m.seen != nil {
				t.seen[*m.seen] = m.events
			}
		}
		return n, len(msgs), nil
	}
}

// answering returns the plan's aggregates (indexes) that answer the
// windows from lo on, and where the batch must end so that they answer all
// of it: an aggregate an alter added (Aggregate.Since) answers only the
// windows starting at or after its Since, and is left out before (the query
// API refuses those windows).
func (t *target) answering(lo, hi int64) ([]int, int64) {
	w := int64(t.spec.Window)
	var idx []int
	for i, name := range t.plan.Aggregates {
		since := t.e.spec.Aggregates[name].Since
		if since == nil {
			idx = append(idx, i)
			continue
		}
		// The first window starting at or after since.
		first := sketchd.PaneStart(since.UnixNano()+w-1, w)
		if first <= lo {
			idx = append(idx, i)
		} else {
			hi = min(hi, first)
		}
	}
	return idx, hi
}

// render renders the messages of the windows of res (the results of the
// plan's aggregates idx), window by window (then aggregate, then group, in
// key order).
func (t *target) render(tgt query.Target, res []*query.Result, idx []int, lo int64, n int, p pass) ([]outMsg, error) {
	w := int64(t.spec.Window)
	var out []outMsg
	for wi := range n {
		start := lo + int64(wi)*w
		for ri, r := range res {
			ai := idx[ri]
			for _, g := range r.Groups {
				win := windowAt(g.Windows, start)
				if win == nil || win.Events == 0 {
					continue
				}
				gk := groupKey(t.e.spec.EmitGroupBy(&t.spec), g.Key)
				sk := seenKey{ai, start, gk}
				var update bool
				switch p {
				case passFinal:
					// It updates a message published at its close.
					update = t.spec.Trigger == sketchd.EmitOnClose && start+w <= t.cur.closedTo
				case passLate:
					if last, ok := t.seen[sk]; ok && last == win.Events {
						continue
					}
					update = true
				}
				body, err := t.e.s.renderer.Message(tgt.Spec.Name, t.plan, ai, r, g.Key, win, update)
				if err != nil {
					return nil, err
				}
				m := outMsg{id: msgID(tgt, t.spec.Subject, t.plan.Aggregates[ai], gk, start, win, p), body: body, events: win.Events}
				if p != passFinal {
					m.seen = &sk
				}
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// windowAt returns the window of ws that starts at start.
func windowAt(ws []query.Window, start int64) *query.Window {
	for i := range ws {
		if ws[i].Start == start {
			return &ws[i]
		}
	}
	return nil
}
