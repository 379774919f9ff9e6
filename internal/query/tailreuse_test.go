package query

import (
	"fmt"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/panetest"
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
