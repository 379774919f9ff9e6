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
			askEqual(t, at, l, q, ref, qu)
			return q.Stats().Decoded - d0
		}
		ask(fmt.Sprintf("round %d, first", round))
		open := l.openSlots(to-10*m, to, l.target.Watermark) * len(l.keys)
		commitLate(t, l, fmt.Sprint("late", round))
		if n := ask(fmt.Sprintf("round %d, after one pane changed", round)); n != 1 {
			t.Fatalf("round %d: decoded %d sketches after a commit that changed 1 pane (%d open panes)", round, n, open)
		}
		l.ingest(t)
	}
}

// TestTailSharesUnchangedPanes: through store.ScanPanesReusing, a new
// state's tails take the open panes that a commit left unchanged from the
// previous state's tails, the very records, where each was copied out of
// Badger again at every commit; the pane the commit changed is read anew.
// Every answer equals a querier's without any cache. The memo counts a shared pane once (in the
// newer state), so a budget of one and a half states keeps the previous
// state while the new one is read by a question per country: counted in
// both, the memo dropped the previous state at the second question, and
// the keys read after that copied every pane.
func TestTailSharesUnchangedPanes(t *testing.T) {
	var _ reusingReader = (*store.DB)(nil)
	l, reads, q, ref := newLiveMemo(t, 20261207, 60, 3, 0, 12)
	for _, budget := range []string{"default", "a state and a half"} {
		if budget != "default" {
			q = New(reads, Options{CacheBytes: 4 * oneState(t, q, l) * 3 / 2})
			t.Cleanup(q.Close)
		}
		for round := range 3 {
			shareRound(t, fmt.Sprintf("%s budget, round %d", budget, round), l, q, ref)
			l.ingest(t)
		}
	}
}

// oneState returns the bytes the memo of q holds for the newest state of
// l's stream after a question over the last 10 minutes.
func oneState(t *testing.T, q *Querier, l *live) int64 {
	t.Helper()
	to, m := l.now(), int64(time.Minute)
	if _, err := q.Query(t.Context(), l.target, Query{Aggregate: "users", From: to - 10*m, To: to, Step: m}); err != nil {
		t.Fatal(err)
	}
	q.tails.mu.Lock()
	defer q.tails.mu.Unlock()
	return q.tails.streams[l.target.ID][0].bytes
}

// shareRound asks, commits one late event into key 0's newest pane, asks
// again and checks which panes the newest state shares with the one
// before, and that the memo counts the shared ones once.
func shareRound(t *testing.T, at string, l *live, q, ref *Querier) {
	t.Helper()
	m := int64(time.Minute)
	to := l.now()
	// A question per country, as a dashboard's filters ask: each reads its
	// keys' tails, the later ones after the earlier ones' are kept.
	ask := func(when string) {
		t.Helper()
		for _, c := range []string{"DE", "FR", "US"} {
			qu := Query{Aggregate: "users", From: to - 10*m, To: to, Step: m, Where: map[string][]string{"country": {c}}}
			askEqual(t, at+", "+when+", "+c, l, q, ref, qu)
		}
	}
	ask("first")
	before := newestTails(q, l.target.ID)
	last := commitLate(t, l, "late "+at)
	ask("after one pane changed")
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
				t.Errorf("%s: the pane the commit changed was taken from the previous state", at)
			case changed:
				fresh++
			case same:
				shared++
			default:
				t.Errorf("%s: key %q pane %d unchanged but copied again", at, key, p1.Start)
			}
		}
	}
	want := 0 // the pane changed was there before (else the event made it)
	if before[l.keys[0]].pane(last.UnixNano()) != nil {
		want = 1
	}
	if fresh != want || shared == 0 {
		t.Fatalf("%s: %d panes shared, %d read anew; want every unchanged one shared and %d read anew", at, shared, fresh, want)
	}
	// Each record counted once, in whichever state holds it.
	q.tails.mu.Lock()
	defer q.tails.mu.Unlock()
	var total, once int64
	seen := map[*[]byte]bool{}
	for _, s := range q.tails.streams[l.target.ID] {
		total += s.bytes
		for key, tl := range s.tails {
			once += tailBytes(key, tl)
			for i := range tl.panes {
				p := &tl.panes[i]
				if d := unsafe.SliceData(p.Sketches); d != nil {
					if seen[d] {
						once -= paneBytes(p)
					}
					seen[d] = true
				}
			}
		}
	}
	if total != once {
		t.Errorf("%s: the memo counts %d bytes, its records once %d", at, total, once)
	}
}

// askEqual asks q and ref qu and fails unless their answers are equal.
func askEqual(t *testing.T, at string, l *live, q, ref *Querier, qu Query) {
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

// commitLate commits one late event (user id user) into key 0's newest
// pane, which starts at the returned time, and fails if the watermark
// moved.
func commitLate(t *testing.T, l *live, user string) time.Time {
	t.Helper()
	var b window.Batch
	l.pos++
	last := l.base.Add(time.Duration(l.minute-1) * time.Minute)
	e := panetest.Event(l.keys[0], last.Add(3*time.Second), l.pos, user)
	b.Add(&e)
	b.Now, b.Position = last.Add(time.Minute).UnixNano(), l.pos
	wm := l.target.Watermark
	l.commit(t, &b)
	if l.target.Watermark != wm {
		t.Fatalf("%s: the watermark moved", user)
	}
	return last
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
