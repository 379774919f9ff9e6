package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/internal/store"
)

// TestTailMemoEqualsStore: a dashboard's distinct questions after each
// commit, ten at once for each of four aggregates, share one store read of
// each key's open tail (whole panes) (several open panes:
// five minutes of allowed lateness, late events landing in the older ones),
// and every answer equals that of a querier without any cache or memo, under
// -race with concurrent readers. The second question of a commit over the
// same keys reads no pane from the store (its final panes are cached, its
// open ones memoized): without the memo it reads every open pane again.
func TestTailMemoEqualsStore(t *testing.T) {
	l, reads, memo, ref := newLiveMemo(t, 20261206, 12, 5, 4, 20)
	m := int64(time.Minute)
	for round := range 6 {
		l.ingest(t)
		to := l.now()
		if open := l.openSlots(to-20*m, to, l.target.Watermark); open < 3 {
			t.Fatalf("round %d: %d open panes in the range: the memo would have little to share", round, open)
		}
		tailFrom, _ := (&plan{target: l.target}).tailFrom()
		reads.tailReads(tailFrom)
		for _, agg := range []string{"users", "urls", "latency", "sample"} {
			questions := []Query{
				{From: to - 20*m, To: to, Step: m, GroupBy: []string{"country"}},
				{From: to - 20*m, To: to, Step: 5 * m},
				{From: to - 20*m, To: to},
				{From: to - 3*m, To: to + m, Step: m},
				{From: to - 20*m, To: to, Where: map[string][]string{"country": {"DE"}}, GroupBy: []string{"device"}},
			}
			for i := range questions {
				questions[i].Aggregate = agg
			}
			concurrently(t, memo, l.target, questions)
			// A new commit's first question reads the tails (the
			// concurrent ones above did), the second reads nothing more.
			before := reads.n.Load()
			for i, qu := range questions {
				at := fmt.Sprintf("round %d %s question %d", round, agg, i)
				got, err := memo.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				want, err := ref.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				if want.Panes == 0 {
					t.Fatalf("%s: no pane read", at)
				}
				sameResult(t, at, got, want)
			}
			if n := reads.n.Load() - before; n != 0 {
				t.Fatalf("round %d %s: %d panes read from the store again within one commit", round, agg, n)
			}
		}
		// Ten questions at once after a commit, for each of four
		// aggregates, read each open pane once (whole: every slot).
		tails := reads.tailReads(tailFrom)
		if len(tails) == 0 {
			t.Fatalf("round %d: no open pane read", round)
		}
		for pane, n := range tails {
			if n != 1 {
				t.Fatalf("round %d: open pane %s read %d times by one commit's questions", round, pane, n)
			}
		}
	}
}

// newLiveMemo is a live stream (seeded) of keys keys with lateness
// minutes of allowed lateness and events up to late minutes late, minutes
// minutes ingested; a querier with every cache reading it through a
// storeReads, and a reference querier without any cache reading whole
// panes.
func newLiveMemo(t *testing.T, seed uint64, keys, lateness, late, minutes int) (l *live, reads *storeReads, q, ref *Querier) {
	t.Helper()
	t.Logf("seed %d", seed)
	l = newLiveSpec(t, seed, keys, func(s *sketchd.Stream) { s.AllowedLateness = sketchd.Duration(time.Duration(lateness) * time.Minute) })
	l.late = late
	reads = &storeReads{DB: l.db}
	q = New(reads, Options{})
	t.Cleanup(q.Close)
	ref = New(wholePanes{l.db}, Options{CacheBytes: -1, ResultEntries: -1, WindowCacheBytes: -1})
	for range minutes {
		l.ingest(t)
	}
	return l, reads, q, ref
}

// storeReads counts the stream's own panes a querier reads from the store,
// and how often it reads each pane starting at or after tailFrom.
type storeReads struct {
	*store.DB
	n        atomic.Int64
	tailFrom atomic.Int64
	mu       sync.Mutex
	tail     map[string]int // key and start -> reads
}

func (r *storeReads) ScanTierPaneSlot(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanTierPaneSlot(ctx, id, tier, keys, from, to, slot, func(p sketchd.PaneRecord) error {
		if tier == 0 {
			r.count(p)
		}
		return fn(p)
	})
}

// ScanTierPaneSlotBorrowed is the store's lending one-slot scan (what
// the querier's final scans call), counted as ScanTierPaneSlot.
func (r *storeReads) ScanTierPaneSlotBorrowed(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanTierPaneSlotBorrowed(ctx, id, tier, keys, from, to, slot, func(p sketchd.PaneRecord) error {
		if tier == 0 {
			r.count(p)
		}
		return fn(p)
	})
}

// ScanPanes reads whole panes (the open tails: tailmemo.go).
func (r *storeReads) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanPanes(ctx, id, keys, from, to, func(p sketchd.PaneRecord) error {
		r.count(p)
		return fn(p)
	})
}

// ScanPanesReusing counts as ScanPanes does, a record reused or not.
func (r *storeReads) ScanPanesReusing(ctx context.Context, id uint32, keys []string, from, to int64, reuse func(string, int64) *sketchd.PaneRecord, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanPanesReusing(ctx, id, keys, from, to, reuse, func(p sketchd.PaneRecord) error {
		r.count(p)
		return fn(p)
	})
}

func (r *storeReads) count(p sketchd.PaneRecord) {
	r.n.Add(1)
	if p.Start >= r.tailFrom.Load() {
		r.mu.Lock()
		if r.tail == nil {
			r.tail = map[string]int{}
		}
		r.tail[fmt.Sprint(p.Key, p.Start)]++
		r.mu.Unlock()
	}
}

// tailReads returns how often each open pane was read since the last call.
func (r *storeReads) tailReads(tailFrom int64) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.tail
	r.tail = map[string]int{}
	r.tailFrom.Store(tailFrom)
	return out
}

// concurrently asks every question twice at once through QueryShared, as
// the API does, and reads every answer.
func concurrently(t *testing.T, q *Querier, target Target, questions []Query) {
	t.Helper()
	done := make(chan error, 2*len(questions))
	for _, qu := range questions {
		for range 2 {
			go func() {
				res, err := q.QueryShared(t.Context(), target, qu)
				if err == nil {
					readAll(res)
				}
				done <- err
			}()
		}
	}
	for range 2 * len(questions) {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestTailFrom: the tail starts at the first pane that is not final, right
// after the last final one, for granularities, lateness and watermarks at
// and around pane bounds (seeded).
func TestTailFrom(t *testing.T) {
	const seed = 61
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 2000 {
		spec := panetest.Spec(t)
		gran := []time.Duration{time.Second, time.Minute, 15 * time.Minute, time.Hour}[rng.IntN(4)]
		spec.Granularity = sketchd.Duration(gran)
		spec.AllowedLateness = sketchd.Duration(time.Duration(rng.IntN(4)) * gran / 2)
		wm := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).UnixNano() + rng.Int64N(int64(24*time.Hour))
		if rng.IntN(4) == 0 {
			wm -= wm % int64(gran) // on a bound
		}
		p := &plan{target: Target{Spec: spec, Watermark: wm, LastCommit: 1}}
		from, ok := p.tailFrom()
		if !ok {
			t.Fatalf("case %d: no tail at watermark %d", i, wm)
		}
		if from%int64(gran) != 0 || spec.PaneFinalAt(from, wm) || !spec.PaneFinalAt(from-int64(gran), wm) {
			t.Fatalf("case %d: tail from %d (gran %v, lateness %v, watermark %d): final %v, previous final %v",
				i, from, gran, time.Duration(spec.AllowedLateness), wm, spec.PaneFinalAt(from, wm), spec.PaneFinalAt(from-int64(gran), wm))
		}
	}
	for _, tc := range []Target{
		{LastCommit: 0, Watermark: 1},                          // nothing committed
		{LastCommit: 1, Watermark: 1, Partitions: []uint32{1}}, // read over partitions
	} {
		tc.Spec = panetest.Spec(t)
		if _, ok := (&plan{target: tc}).tailFrom(); ok {
			t.Fatalf("memo used for %+v", tc)
		}
	}
}

// TestTailMemoKeepsRecentStates: a question asked for the previous state
// after the new state's (questions slower than the commits) still shares
// its state's read: it reads no open pane from the store.
func TestTailMemoKeepsRecentStates(t *testing.T) {
	l, reads, q, ref := newLiveMemo(t, 20261208, 8, 3, 3, 20)
	m := int64(time.Minute)
	ask := func(at string, tgt Target, qu Query) {
		t.Helper()
		if _, err := q.Query(t.Context(), tgt, qu); err != nil {
			t.Fatalf("%s: %v", at, err)
		}
	}
	to := l.now()
	old := l.target
	ask("old state", old, Query{Aggregate: "users", From: to - 20*m, To: to})
	l.ingestOpen(t) // a commit within the minute: a new state
	ask("new state", l.target, Query{Aggregate: "users", From: to - 20*m, To: to})
	oldFrom, _ := (&plan{target: old}).tailFrom()
	reads.tailReads(oldFrom)
	qu := Query{Aggregate: "urls", From: to - 10*m, To: to, GroupBy: []string{"country"}}
	got, err := q.Query(t.Context(), old, qu)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reads.tailReads(oldFrom)); n != 0 {
		t.Fatalf("a question of the previous state read %d open panes from the store: its tails were dropped", n)
	}
	if got.Panes == 0 {
		t.Fatal("no pane answered")
	}
	// Its answer is the previous state's (the memo's read of it), which
	// the new commit changed: it must not equal the new state's.
	want, err := ref.Query(t.Context(), l.target, qu)
	if err != nil {
		t.Fatal(err)
	}
	if got.Panes == want.Panes && sameEvents(got, want) {
		t.Fatal("the previous state's answer equals the new state's: the late events were not in the new state, the test proves nothing")
	}
}

// sameEvents reports whether two results count the same events in every
// window of every group.
func sameEvents(a, b *Result) bool {
	if len(a.Groups) != len(b.Groups) {
		return false
	}
	for gi := range a.Groups {
		for wi := range a.Groups[gi].Windows {
			if a.Groups[gi].Windows[wi].Events != b.Groups[gi].Windows[wi].Events {
				return false
			}
		}
	}
	return true
}

// TestTailMemoNewestTakesTheBudget: the memo's budget is the stream's,
// over its states: with room for one state's tails and a half, a new
// state's tails are kept (the oldest state let go), so the new state's
// next question reads no open pane from the store. With the budget split
// evenly between the states, each had room for half of one state's tails
// and the next question read the rest again.
func TestTailMemoNewestTakesTheBudget(t *testing.T) {
	l, reads, q0, _ := newLiveMemo(t, 20261206, 8, 3, 3, 20)
	m := int64(time.Minute)
	to := l.now()
	whole := Query{Aggregate: "users", From: to - 20*m, To: to}
	if _, err := q0.Query(t.Context(), l.target, whole); err != nil {
		t.Fatal(err)
	}
	oneState, _ := q0.tails.stats()
	if oneState == 0 {
		t.Fatal("no tail kept")
	}
	q := New(reads, Options{CacheBytes: 4 * oneState * 3 / 2}) // the memo gets a quarter
	ask := func(at string, qu Query) {
		t.Helper()
		if _, err := q.Query(t.Context(), l.target, qu); err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		if bytes, refused := q.tails.stats(); refused != 0 || bytes > q.tails.max {
			t.Fatalf("%s: %d tails refused, %d bytes held of %d", at, refused, bytes, q.tails.max)
		}
	}
	ask("first state", whole)
	l.ingestOpen(t) // a commit within the minute: a new state
	ask("new state", whole)
	tailFrom, _ := (&plan{target: l.target}).tailFrom()
	reads.tailReads(tailFrom)
	ask("new state, another aggregate", Query{Aggregate: "latency", From: to - 20*m, To: to})
	if n := len(reads.tailReads(tailFrom)); n != 0 {
		t.Fatalf("the new state's second question read %d open panes from the store", n)
	}
}
