package query

import (
	"context"
	"encoding/binary"
	"sync"
	"time"
)

// Ahead: the work of a minute's move done in the minute before it. A
// dashboard asks "the last hour" anchored at now, so at the commit that
// moves the watermark a pane every window of its questions moves a pane
// with it: the edge window's final part is new, and so is every final
// window of a series whose windows do not start on a multiple of their
// width (pieces.go). Merged at the move from their pieces, per group,
// they made a minute's first refresh cost about four times a refresh
// within the minute (BenchmarkDashboardMinuteMove). But most of it is
// final a minute before: after the move to tailFrom t+pane the edge's
// final part is [s+pane, t+pane), whose prefix [s+pane, t) (edgewin.go)
// is final at tailFrom t, as is every final window of the moved series
// (they end at or before the edge window's start, s+pane <= t).
//
// A question moves in two ways: its from with the clock (a dashboard's
// "last hour" at each minute) and its tail start with the watermark (when
// it passes a pane's end plus the allowed lateness). They move together
// only for a range anchored at the watermark; a dashboard's clock moves
// its from at :00 and a stream a minute late moves its tail at about :10.
// Either move gives the edge window a new final part whose prefix is
// final before the move: [start+pane, tailFrom-pane) when the from moves,
// [start, tailFrom) when the tail does. So a question that moved by a
// pane since it was last asked queues a job for the move it makes next
// (aheadSeen.predict: the alternate one after a lone move, the same after
// two alike or both at once) that computes, in the background, that
// move's final windows and edge prefix, and caches them under the keys
// the question after the move looks up; the move then merges the prefix
// and the pane that turned final into the edge window's final part (two
// parts per group). The entries are the ones the question would compute
// itself, by its geometry alone, so answers do not depend on whether a
// job ran or what it predicted (TestAheadEqualsWhole).
//
// One worker, owned by the Querier (started by the first job, stopped
// by Close), runs one job at a time, a delay after it was queued (past
// the move's burst of questions), under the query memory budget and a
// context Close cancels. The queue is small and deduplicated per shape,
// from and tailFrom; a job is dropped when the queue is full, and
// skipped when the stream's tailFrom has moved on since (stale).

// aheadWorker holds the queue of ahead jobs and the state deciding them.
// Its zero value is unusable; a nil *aheadWorker does nothing.
type aheadWorker struct {
	q     *Querier
	max   int           // queued jobs at most
	delay time.Duration // a job runs no sooner than this after it was queued (at most a quarter of a pane)
	// manual: no worker goroutine; tests and benchmarks run the queue
	// with runQueued.
	manual bool

	mu     sync.Mutex
	jobs   []*aheadJob
	queued map[string]int64     // job key -> its tailFrom: queued or done
	seen   map[string]aheadSeen // question key -> when it was last asked
	latest map[uint32]int64     // stream -> the newest tailFrom a question was asked at
	made   map[winKey]struct{}  // entries jobs computed, not yet taken by a question
	wake   chan struct{}        // cap 1: a job was queued
	ctx    context.Context      // the worker's; close cancels it
	cancel context.CancelFunc
	done   chan struct{} // closed when the worker returns; nil until it starts
	closed bool
}

// aheadSeen is where a question (shape and windows) was last asked: its
// from and the tail start then, and how its last two moves went.
type aheadSeen struct {
	from, tailFrom int64
	last, prev     move
	// from and tail: when its from and its tail start last moved.
	fromAt, tailAt moveTimes
}

// moveTimes are the times of the last two moves of a kind (zero: not
// seen).
type moveTimes struct{ last, before time.Time }

// add returns t after a move at now.
func (t moveTimes) add(now time.Time) moveTimes { return moveTimes{last: now, before: t.last} }

// move is how a question moved between two askings: its from a pane
// later (the clock's anchor moved), its tail start a pane later (the
// watermark moved), both, or neither / otherwise (unknown).
type move struct{ from, tail bool }

// known: the question moved by a pane, its from or its tail or both.
func (m move) known() bool { return m.from || m.tail }

// aheadJob is the question of the move predicted next, at the current
// target: its plan moved (keys and groups as selected now, which hold
// every key with a pane in the range it computes), the tailFrom it was
// asked at, and the tailFrom predicted with the move (next: tailFrom or
// a pane later).
type aheadJob struct {
	p         *plan
	tailFrom  int64
	next      int64
	notBefore time.Time
}

func newAheadWorker(q *Querier, max int, delay time.Duration) *aheadWorker {
	if max <= 0 || q.wins == nil {
		return nil
	}
	a := &aheadWorker{q: q, max: max, delay: delay, queued: map[string]int64{}, seen: map[string]aheadSeen{},
		latest: map[uint32]int64{}, made: map[winKey]struct{}{}, wake: make(chan struct{}, 1)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// maxAheadSeen bounds the questions, queued keys and made entries the
// worker remembers; past it, those of older tail starts are forgotten
// (made: all of them, losing only hit counts).
const maxAheadSeen = 4096

// note records that p is being answered and, when p moved by a pane
// since it was last asked, queues the job of the move predicted next
// (predict) when that move has final windows or an edge prefix to
// compute. A question asked again where it was asked before tries again
// (its job may have been dropped); the queue deduplicates.
func (a *aheadWorker) note(p *plan) {
	if a == nil || !p.winCacheable() {
		return
	}
	t, ok := p.edgeFrom()
	if !ok {
		return
	}
	gran := int64(p.target.Spec.Granularity)
	qk := binary.AppendVarint([]byte(p.shape), int64(p.geom.n))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.latest[p.target.ID] = max(a.latest[p.target.ID], t)
	s, seen := a.seen[string(qk)]
	if !seen || s.from != p.geom.from || s.tailFrom != t {
		var m move
		if seen {
			m = classify(p.geom.from-s.from, t-s.tailFrom, gran)
		}
		s = s.moved(p.geom.from, t, m, time.Now())
		a.seen[string(qk)] = s
	}
	next, ok := s.predict()
	if !ok || !p.aheadUseful(next, t) {
		return
	}
	jk := string(binary.AppendVarint(binary.AppendVarint(qk, p.geom.from), t))
	if _, dup := a.queued[jk]; dup {
		return
	}
	if len(a.jobs) >= a.max {
		a.q.stats.aheadDropped.Add(1)
		return
	}
	a.forgetOld()
	a.queued[jk] = t
	a.jobs = append(a.jobs, &aheadJob{p: p.moved(next.fromBy(gran)), tailFrom: t, next: t + next.tailBy(gran),
		notBefore: a.when(s, next, time.Duration(gran))})
	a.start()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// moved returns s after the question moved by m to from and tailFrom at
// time now.
func (s aheadSeen) moved(from, tailFrom int64, m move, now time.Time) aheadSeen {
	n := aheadSeen{from: from, tailFrom: tailFrom, last: m, prev: s.last, fromAt: s.fromAt, tailAt: s.tailAt}
	if m.from {
		n.fromAt = s.fromAt.add(now)
	}
	if m.tail {
		n.tailAt = s.tailAt.add(now)
	}
	return n
}

// when returns when the job of the question's next move m runs at the
// soonest: as long after the last move of that kind as that one came
// after the move before it, less a quarter of that (each kind of move
// comes once a pane: the clock's at the minute, the watermark's when the
// events pass it), but no sooner than the delay after now (past the
// burst of the move that queued it). A job computed long before its move
// had its entries evicted from the window cache before the question came
// to take them (the load runner's dashboard: a job for the clock's move,
// run 5 s after the watermark's at :10, waited 45 s). The delay is at
// most a quarter of a pane.
func (a *aheadWorker) when(s aheadSeen, m move, pane time.Duration) time.Time {
	soonest := time.Now().Add(min(a.delay, pane/4))
	t := s.tailAt
	if m.from {
		t = s.fromAt
	}
	if t.last.IsZero() || t.before.IsZero() {
		return soonest
	}
	period := t.last.Sub(t.before)
	if due := t.last.Add(period - period/4); due.After(soonest) {
		return due
	}
	return soonest
}

// classify names the move of a question whose from moved by df and whose
// tail start moved by dt, each 0 or a pane (gran); else unknown.
func classify(df, dt, gran int64) move {
	if (df != 0 && df != gran) || (dt != 0 && dt != gran) {
		return move{}
	}
	return move{from: df == gran, tail: dt == gran}
}

// predict returns the move a question makes next, from its last two. A
// dashboard's "last hour" anchors its from at the clock's minute, while
// the tail start moves when the watermark passes a pane's end plus the
// allowed lateness: two moves a minute apart, alternating (a from move
// at :00, a tail move at :10 for a stream a minute late). Both at once
// (a range anchored at the watermark) repeat; so does the same move twice
// (a fixed from whose tail moves, a clock over a stream that stopped).
func (s aheadSeen) predict() (move, bool) {
	switch {
	case !s.last.known():
		return move{}, false
	case s.last.from && s.last.tail, s.prev == s.last:
		return s.last, true
	default:
		return move{from: !s.last.from, tail: !s.last.tail}, true
	}
}

// fromBy and tailBy are the shifts of m's from and tail start.
func (m move) fromBy(gran int64) int64 { return shift(m.from, gran) }
func (m move) tailBy(gran int64) int64 { return shift(m.tail, gran) }

func shift(moves bool, gran int64) int64 {
	if moves {
		return gran
	}
	return 0
}

// aheadUseful reports whether p's next move m (asked now at tailFrom t)
// has something final now that its question computes: final windows cut
// into pieces (when its from moves), or the prefix of its edge window's
// final part.
func (p *plan) aheadUseful(m move, t int64) bool {
	if _, ok := finerParams(p.agg); !ok || p.family == "" {
		return false
	}
	gran := int64(p.target.Spec.Granularity)
	next := *p // its geometry only: moved clones the groups
	d := m.fromBy(gran)
	next.geom.from, next.geom.to, next.geom.floor, next.geom.hasFloor = p.geom.from+d, p.geom.to+d, 0, false
	if m.from && next.piecewise() {
		return true
	}
	_, ok := next.nextEdge(t + m.tailBy(gran))
	return ok
}

// moved returns a copy of p (at the start of answer: its groups in
// selectKeys order) with its windows moved by d: the question a minute
// later, over the keys and groups selected now.
func (p *plan) moved(d int64) *plan {
	g := p.geom
	g.from, g.to, g.floor, g.hasFloor = g.from+d, g.to+d, 0, false
	c := p.cut(g)
	c.shared, c.merge = false, nil
	return c
}

// nextEdge returns the start of the edge window of p (a plan moved) when
// the tail starts at next, when the prefix of its final part, [start,
// next-pane), is not empty.
func (p *plan) nextEdge(next int64) (start int64, ok bool) {
	gran := int64(p.target.Spec.Granularity)
	k := floorDiv(next-p.geom.from, p.geom.step)
	if k < 0 || k >= int64(p.geom.n) {
		return 0, false
	}
	start, _ = p.geom.bounds(int(k))
	return start, start < next-gran
}

// forgetOld drops, past maxAheadSeen, what the worker remembers of tail
// starts older than their stream's newest. a.mu is held.
func (a *aheadWorker) forgetOld() {
	newest := a.newest()
	if len(a.queued) > maxAheadSeen {
		for k, t := range a.queued {
			if t < newest {
				delete(a.queued, k)
			}
		}
	}
	if len(a.seen) > maxAheadSeen {
		for k, s := range a.seen {
			if s.tailFrom < newest {
				delete(a.seen, k)
			}
		}
	}
	if len(a.made) > maxAheadSeen {
		clear(a.made)
	}
}

// newest is the newest tailFrom of any stream: what the worker remembers
// of older ones can go (a stream that stopped keeps nothing worth it).
func (a *aheadWorker) newest() int64 {
	var n int64
	for _, t := range a.latest {
		n = max(n, t)
	}
	return n
}
