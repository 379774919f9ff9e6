package query

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// dashboardAhead is the dashboard of the ahead tests: questions anchored
// at now (to), whose windows move a pane with the watermark.
func dashboardAhead(to int64) []Query {
	m := int64(time.Minute)
	var qs []Query
	for _, agg := range []string{"users", "urls", "latency", "sample"} {
		qs = append(qs,
			Query{Aggregate: agg, From: to - 30*m, To: to},
			Query{Aggregate: agg, From: to - 30*m, To: to, GroupBy: []string{"device"}},
			Query{Aggregate: agg, From: to - 60*m, To: to, Step: 15 * m},
			Query{Aggregate: agg, From: to - 30*m, To: to, Step: 5 * m, GroupBy: []string{"country"}})
	}
	return qs
}

// TestAheadEqualsWhole: with the next move's final windows and edge
// prefixes computed ahead (the jobs queued before a move run before it),
// every answer over a live stream, across moves and commits within the
// minute, equals that of a querier without any cache (hll, cms and
// reservoir exactly, t-digests within their rank error), and is the same
// sketch, byte for byte, as that of a querier with every cache but no
// ahead jobs: the cut of a window is its geometry's, whether a job
// computed its parts or the question did. The jobs ran and their entries
// were taken. Two dashboards: anchored at the watermark (from and tail
// move at once), and at a clock a minute ahead of it (from moves, then
// the tail: the load runner's).
func TestAheadEqualsWhole(t *testing.T) {
	for _, c := range []struct {
		name  string
		clock bool
	}{{"together", false}, {"clock first", true}} {
		t.Run(c.name, func(t *testing.T) {
			l, _, q, ref := newLiveMemo(t, 20261206, 12, 3, 3, 40)
			q.ahead.manual = true
			plain := New(l.db, Options{AheadJobs: -1})
			ask := func(at string, to int64) {
				for i, qu := range dashboardAhead(to) {
					at := fmt.Sprintf("%s question %d (%s)", at, i, qu.Aggregate)
					sameAsReference(t, at, q, ref, l.target, qu)
					sameBytes(t, at, q, plain, l.target, qu)
				}
			}
			for round := range 5 {
				l.ingest(t) // the watermark moves
				for c := range 3 {
					if c > 0 {
						l.ingestOpen(t) // late events, the watermark unmoved
					}
					ask(fmt.Sprintf("round %d commit %d", round, c), l.now())
				}
				q.ahead.runQueued(t.Context())
				if c.clock {
					ask(fmt.Sprintf("round %d, clock moved", round), l.now()+int64(time.Minute))
					q.ahead.runQueued(t.Context())
				}
			}
			st := q.Stats()
			t.Logf("ahead: %+v, %d entries, %d taken", st.AheadJobs, st.AheadEntries, st.AheadHits)
			if st.AheadJobs.Run == 0 || st.AheadHits == 0 || st.AheadJobs.Failed > 0 || st.AheadJobs.Dropped > 0 {
				t.Fatalf("ahead jobs %+v, %d entries taken: want jobs run, none failed or dropped, entries taken", st.AheadJobs, st.AheadHits)
			}
		})
	}
}

// sameBytes asks qu of q and of other and checks that their answers are
// the same sketches, byte for byte.
func sameBytes(t *testing.T, at string, q, other *Querier, target Target, qu Query) {
	t.Helper()
	got, err := q.Query(t.Context(), target, qu)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	want, err := other.Query(t.Context(), target, qu)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	sameResult(t, at, got, want)
	for gi, wg := range want.Groups {
		for i, ww := range wg.Windows {
			gb, _ := got.Groups[gi].Windows[i].Sketch.AppendBinary(nil)
			wb, _ := ww.Sketch.AppendBinary(nil)
			if !bytes.Equal(gb, wb) {
				t.Fatalf("%s: group %v window %d: the sketch differs from the one computed without ahead jobs", at, wg.Key, i)
			}
		}
	}
}

// TestAheadMoveMergesTwoParts: when the jobs of the minute ran before its
// move, the refresh after the move merges two parts per group into the
// final part of the edge window of a question of 12 single-key groups
// (the prefix computed ahead and the pane that turned final), and its
// other windows come whole from the cache; without them (AheadJobs < 0) it merges the pieces of
// the edge window's final part, about 20 per group.
func TestAheadMoveMergesTwoParts(t *testing.T) {
	for _, c := range []struct {
		name  string
		ahead int
	}{{"ahead", 0}, {"without", -1}} {
		t.Run(c.name, func(t *testing.T) {
			l := newLiveSpec(t, 20261206, 12, nil)
			for range 40 {
				l.ingest(t)
			}
			q := New(l.db, Options{AheadJobs: c.ahead})
			if q.ahead != nil {
				q.ahead.manual = true
			}
			ask := func() Stats { return askMoving(t, q, l, l.now()) }
			for move := range 4 {
				l.ingestOpen(t)
				ask()
				if q.ahead != nil {
					q.ahead.runQueued(t.Context())
				}
				l.ingest(t)
				got := ask()
				t.Logf("move %d: %+v", move, got)
				if move < 1 { // the first questions are not yet known to move
					continue
				}
				// 12 device groups × 2 parts, and the 15-minute series' edge
				// window (one group, 2 parts).
				if c.ahead >= 0 && (got.MergedParts > 2*12+2 || got.ComputedPieces > 2) {
					t.Fatalf("move %d: merged %d parts, computed %d pieces: want at most %d parts (2 per group) and the 2 panes that turned final",
						move, got.MergedParts, got.ComputedPieces, 2*12+2)
				}
				if c.ahead < 0 && got.MergedParts < 10*12 {
					t.Fatalf("move %d without ahead jobs: merged %d parts, want the edge window's pieces (at least 10 a group)", move, got.MergedParts)
				}
			}
		})
	}
}

// TestAheadClockFirst: a dashboard whose from moves with a clock at the
// minute and whose tail start moves later in the minute, with the
// watermark (the load runner's: "the last hour" from :00, the tail at
// :10), merges two parts per group at either move once the jobs queued
// at the move before ran: the prefix computed ahead and the pane that
// turned final; its series' windows come whole from the cache. Without
// the jobs it merges the edge window's pieces. (Jobs that predicted both
// moves at once, as before, took nothing here.)
func TestAheadClockFirst(t *testing.T) {
	l := newLiveSpec(t, 20261207, 12, nil)
	for range 40 {
		l.ingest(t)
	}
	q := New(l.db, Options{})
	t.Cleanup(q.Close)
	q.ahead.manual = true
	m := int64(time.Minute)
	ask := func(to int64) Stats { return askMoving(t, q, l, to) }
	ask(l.now())
	for move := range 5 {
		q.ahead.runQueued(t.Context())
		byClock := ask(l.now() + m) // the clock's minute: from moves
		q.ahead.runQueued(t.Context())
		l.ingest(t)
		byWatermark := ask(l.now()) // the same from; the tail moves
		t.Logf("move %d: clock %+v, watermark %+v", move, byClock, byWatermark)
		if move < 1 { // the first moves are not yet known
			continue
		}
		for _, got := range []Stats{byClock, byWatermark} {
			// 12 device groups × 2 parts, and the 15-minute series' edge
			// window (one group, 2 parts).
			if got.MergedParts > 2*12+2 || got.AheadHits == 0 {
				t.Fatalf("move %d: merged %d parts, %d entries computed ahead taken: want at most %d (2 per group), entries taken",
					move, got.MergedParts, got.AheadHits, 2*12+2)
			}
		}
	}
}

// askMoving asks q the two questions of the move tests, anchored at to
// (a 30-minute range by device: 12 single-key groups; an hour at a
// 15-minute step), and returns what answering them merged, computed and
// took from the cache and the ahead jobs.
func askMoving(t *testing.T, q *Querier, l *live, to int64) Stats {
	t.Helper()
	m := int64(time.Minute)
	s0 := q.Stats()
	for _, qu := range []Query{
		{Aggregate: "urls", From: to - 30*m, To: to, GroupBy: []string{"device"}},
		{Aggregate: "users", From: to - 60*m, To: to, Step: 15 * m},
	} {
		if _, err := q.QueryShared(t.Context(), l.target, qu); err != nil {
			t.Fatal(err)
		}
	}
	s1 := q.Stats()
	return Stats{MergedParts: s1.MergedParts - s0.MergedParts, ComputedPieces: s1.ComputedPieces - s0.ComputedPieces,
		CachedWindows: s1.CachedWindows - s0.CachedWindows, AheadHits: s1.AheadHits - s0.AheadHits}
}

// TestAheadWorker: the Querier's own worker runs the jobs in the
// background (a dashboard's questions moving with the watermark queue
// them), a queue of one drops the jobs past it and counts them, and
// Close stops the worker, a job waiting for its delay included, and may
// be called again; questions are answered after it, without jobs.
func TestAheadWorker(t *testing.T) {
	l := newLiveSpec(t, 20261206, 12, nil)
	for range 40 {
		l.ingest(t)
	}
	ask := func(q *Querier) {
		t.Helper()
		for _, qu := range dashboardAhead(l.now()) {
			if _, err := q.QueryShared(t.Context(), l.target, qu); err != nil {
				t.Fatal(err)
			}
		}
	}
	fast := New(l.db, Options{AheadDelay: time.Nanosecond})
	one := New(l.db, Options{AheadJobs: 1, AheadDelay: time.Hour})
	for _, q := range []*Querier{fast, one} {
		ask(q)
		l.ingest(t)
		ask(q) // moved: jobs queued
	}
	deadline := time.Now().Add(10 * time.Second)
	for fast.Stats().AheadJobs.Run < 8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := fast.Stats(); st.AheadJobs.Run < 8 || st.AheadEntries == 0 {
		t.Fatalf("ahead jobs %+v, %d entries: want 8 or more run (16 questions move with the watermark)", st.AheadJobs, st.AheadEntries)
	}
	if st := one.Stats(); st.AheadJobs.Dropped == 0 || st.AheadJobs.Run != 0 {
		t.Fatalf("a queue of one with a job waiting an hour: %+v, want jobs dropped and none run", st.AheadJobs)
	}
	done := make(chan struct{})
	go func() {
		one.Close() // the waiting job is cancelled
		one.Close()
		fast.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	l.ingest(t)
	ask(fast)
	if st := fast.Stats(); len(fast.ahead.jobs) != 0 || st.AheadJobs.Dropped != 0 {
		t.Fatalf("after Close: %d jobs queued, %+v", len(fast.ahead.jobs), st.AheadJobs)
	}
}

// TestAheadJobsDue: a job runs a quarter of its move's period before the
// move is due (the period is the time between the last two moves of that
// kind), no sooner than the delay after it was queued, and the worker
// takes the job due first, not the first queued.
func TestAheadJobsDue(t *testing.T) {
	a := &aheadWorker{delay: 5 * time.Second}
	now := time.Now()
	clock := moveTimes{}.add(now.Add(-70 * time.Second)).add(now.Add(-10 * time.Second))
	s := aheadSeen{fromAt: clock}
	near := func(got, want time.Time) bool { return got.Sub(want).Abs() < time.Second }
	if got := a.when(s, move{from: true}, time.Minute); !near(got, now.Add(35*time.Second)) {
		t.Errorf("clock's move every 60 s, last 10 s ago: due in %v, want 35 s", got.Sub(now))
	}
	if got := a.when(s, move{tail: true}, time.Minute); !near(got, now.Add(5*time.Second)) {
		t.Errorf("a move never seen: due in %v, want the delay, 5 s", got.Sub(now))
	}
	s.fromAt = moveTimes{}.add(now.Add(-61 * time.Second)).add(now.Add(-time.Second))
	if got := a.when(s, move{from: true}, time.Minute); !near(got, now.Add(44*time.Second)) {
		t.Errorf("last move a second ago: due in %v, want 44 s", got.Sub(now))
	}
	later, due := &aheadJob{notBefore: now.Add(time.Hour)}, &aheadJob{notBefore: now.Add(-time.Second)}
	a.jobs = []*aheadJob{later, due}
	if j, _ := a.due(now); j != due {
		t.Fatalf("due took %v, want the job due", j)
	}
	if j, wait := a.due(now); j != nil || !near(now.Add(wait), now.Add(time.Hour)) {
		t.Fatalf("due took %v (wait %v), want none and an hour's wait", j, wait)
	}
}
