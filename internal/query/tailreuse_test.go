package query

import (
	"fmt"
	"maps"
	"testing"
	"time"
	"unsafe"

	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
)

// TestTailReusesUnchangedPanes: after a commit that changes one open pane
// of one key (one late event; the watermark stays), the next question
// decodes that pane's sketch only: the other open panes' stored blobs are
// the bytes the previous commit's questions decoded, so their sketches are
// taken from the previous state's tails (without it: every open pane of
// every key again). Every answer equals a querier's without any cache.
func TestTailReusesUnchangedPanes(t *testing.T) {
	l, _, q, ref := newLiveMemo(t, 20261207, 6, 3, 0, 12)
	m := int64(time.Minute)
	for round := range 4 {
		to := l.now()
		qu := Query{Aggregate: "users", From: to - 10*m, To: to, Step: m}
		ask := func(at string) int64 {
			t.Helper()
			d0 := q.Stats().Decoded
			got, err := q.Query(t.Context(), l.target, qu)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Query(t.Context(), l.target, qu)
			if err != nil {
				t.Fatal(err)
			}
			sameResult(t, at, got, want)
			return q.Stats().Decoded - d0
		}
		ask(fmt.Sprintf("round %d, first", round))
		open := l.openSlots(to-10*m, to, l.target.Watermark) * len(l.keys)
		// One late event into key 0's newest pane, no new time.
		var b window.Batch
		l.pos++
		last := l.base.Add(time.Duration(l.minute-1) * time.Minute)
		e := panetest.Event(l.keys[0], last.Add(3*time.Second), l.pos, fmt.Sprint("late", round))
		b.Add(&e)
		b.Now, b.Position = last.Add(time.Minute).UnixNano(), l.pos
		wm := l.target.Watermark
		l.commit(t, &b)
		if l.target.Watermark != wm {
			t.Fatalf("round %d: the watermark moved", round)
		}
		if n := ask(fmt.Sprintf("round %d, after one pane changed", round)); n != 1 {
			t.Fatalf("round %d: decoded %d sketches after a commit that changed 1 pane (%d open panes)", round, n, open)
		}
		l.ingest(t)
	}
}

// TestTailSharesUnchangedPanes: with enough keys for the store to walk the
// open family (store.ScanPanesReusing), a new state's tails take the open
// panes that a commit left unchanged from the previous state's tails, the
// very records, where each was copied out of Badger again at every commit;
// the pane the commit changed is read anew. Every answer equals a
// querier's without any cache.
func TestTailSharesUnchangedPanes(t *testing.T) {
	var _ reusingReader = (*store.DB)(nil)
	l, _, q, ref := newLiveMemo(t, 20261207, 20, 3, 0, 12)
	m := int64(time.Minute)
	for round := range 3 {
		to := l.now()
		qu := Query{Aggregate: "users", From: to - 10*m, To: to, Step: m}
		ask := func(at string) {
			t.Helper()
			got, err := q.Query(t.Context(), l.target, qu)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Query(t.Context(), l.target, qu)
			if err != nil {
				t.Fatal(err)
			}
			sameResult(t, at, got, want)
		}
		ask(fmt.Sprintf("round %d, first", round))
		before := newestTails(q, l.target.ID)
		var b window.Batch
		l.pos++
		last := l.base.Add(time.Duration(l.minute-1) * time.Minute)
		e := panetest.Event(l.keys[0], last.Add(3*time.Second), l.pos, fmt.Sprint("late", round))
		b.Add(&e)
		b.Now, b.Position = last.Add(time.Minute).UnixNano(), l.pos
		l.commit(t, &b)
		ask(fmt.Sprintf("round %d, after one pane changed", round))
		after := newestTails(q, l.target.ID)
		shared, fresh := 0, 0
		for key, t1 := range after {
			t0 := before[key]
			for i := range t1.panes {
				p1 := &t1.panes[i]
				p0 := t0.pane(p1.Start)
				if p0 == nil {
					continue
				}
				same := len(p0.Sketches) > 0 && len(p1.Sketches) > 0 && unsafe.SliceData(p0.Sketches) == unsafe.SliceData(p1.Sketches)
				switch changed := key == l.keys[0] && p1.Start == last.UnixNano(); {
				case changed && same:
					t.Errorf("round %d: the pane the commit changed was taken from the previous state", round)
				case changed:
					fresh++
				case same:
					shared++
				default:
					t.Errorf("round %d: key %q pane %d unchanged but copied again", round, key, p1.Start)
				}
			}
		}
		if fresh != 1 || shared == 0 {
			t.Fatalf("round %d: %d panes shared, %d read anew; want every unchanged one shared and 1 read anew", round, shared, fresh)
		}
		l.ingest(t)
	}
}

// newestTails returns the tails of stream id's newest state in q's memo.
func newestTails(q *Querier, id uint32) map[string]*tail {
	q.tails.mu.Lock()
	defer q.tails.mu.Unlock()
	sets := q.tails.streams[id]
	if len(sets) == 0 {
		return nil
	}
	return maps.Clone(sets[0].tails)
}
