package query

import (
	"context"
	"slices"
	"time"
)

// The ahead worker's goroutine: it takes the job due first, computes its
// windows ahead into the window cache, and counts which of them queries
// took (ahead.go has the worker, the questions it has seen move and its
// predictions).

// start starts the worker goroutine unless it runs or runs manually.
// a.mu is held.
func (a *aheadWorker) start() {
	if a.done != nil || a.manual {
		return
	}
	a.done = make(chan struct{})
	go a.run()
}

// run is the worker: the queued jobs one at a time, each when it is due
// (the first due first), until Close. A job queued while it waits for
// one due later wakes it to look again.
func (a *aheadWorker) run() {
	defer close(a.done)
	for {
		j, wait := a.due(time.Now())
		if j != nil {
			a.runJob(a.ctx, j)
			continue
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-a.ctx.Done():
		case <-a.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if a.ctx.Err() != nil {
			return
		}
	}
}

// due takes the queued job due first when it is due at now; else it
// returns how long until it is (0: no job queued).
func (a *aheadWorker) due(now time.Time) (*aheadJob, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := a.first()
	if i < 0 {
		return nil, 0
	}
	if wait := a.jobs[i].notBefore.Sub(now); wait > 0 {
		return nil, wait
	}
	return a.take(i), 0
}

// next takes the queued job due first, due or not; nil when none (for
// runQueued).
func (a *aheadWorker) next() *aheadJob {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i := a.first(); i >= 0 {
		return a.take(i)
	}
	return nil
}

// first returns the index of the queued job due first (of those, the
// first queued), -1 when none or closed. a.mu is held.
func (a *aheadWorker) first() int {
	if len(a.jobs) == 0 || a.closed {
		return -1
	}
	i := 0
	for k, j := range a.jobs {
		if j.notBefore.Before(a.jobs[i].notBefore) {
			i = k
		}
	}
	return i
}

// take removes the queued job i and returns it. a.mu is held.
func (a *aheadWorker) take(i int) *aheadJob {
	j := a.jobs[i]
	a.jobs = slices.Delete(a.jobs, i, i+1)
	return j
}

// runJob runs j unless it is stale (the stream's tail start moved on, or
// the stream was forgotten since), and counts the outcome.
func (a *aheadWorker) runJob(ctx context.Context, j *aheadJob) {
	a.mu.Lock()
	stale := a.latest[j.p.target.ID] > j.tailFrom
	a.mu.Unlock()
	if stale || a.q.gens.get(j.p.target.ID) != j.p.gen {
		a.q.stats.aheadStale.Add(1)
		return
	}
	made, err := a.q.computeAhead(ctx, j.p, j.next)
	a.mu.Lock()
	for _, k := range made {
		a.made[k] = struct{}{}
	}
	a.mu.Unlock()
	a.q.stats.aheadMade.Add(int64(len(made)))
	if err != nil {
		a.q.stats.aheadFailed.Add(1)
		return
	}
	a.q.stats.aheadRun.Add(1)
}

// computeAhead computes and caches what p (the question of the next
// move, at the current target) will take from the window cache and is
// final now: its leading final windows when they are cut into pieces (as
// finalPrefixPieced computes them), and the prefix [start, next-pane) of
// its edge window's final part when the tail starts at next (as
// edgePrefix does; next is the current tail start or a pane later, so
// the prefix is final now). It returns the keys of the entries it
// computed.
func (q *Querier) computeAhead(ctx context.Context, p *plan, next int64) ([]winKey, error) {
	var made []winKey
	prefix := q.wins.cachedPrefix(p)
	if sub := p.after(len(prefix)); sub != nil {
		wins, err := q.finalPrefixPieced(ctx, sub)
		if err != nil {
			return made, err
		}
		for i := range wins {
			start, _ := sub.geom.bounds(i)
			made = append(made, winKey{sub.shape, start})
		}
	}
	start, ok := p.nextEdge(next)
	if !ok {
		return made, nil
	}
	end := next - int64(p.target.Spec.Granularity)
	merge, _ := finerParams(p.agg)
	pre := p.cut(geometry{from: start, to: end, step: end - start, window: end - start, n: 1})
	pre.shape, pre.merge = "", merge
	k := prefixKey(p.shape, start, end)
	if _, ok := q.wins.get(k); ok {
		return made, nil
	}
	if _, err := q.edgePrefix(ctx, p.shape, pre); err != nil {
		return made, err
	}
	return append(made, k), nil
}

// used counts k as a hit when a job computed it and no question took it
// before.
func (a *aheadWorker) used(k winKey) {
	if a == nil {
		return
	}
	a.mu.Lock()
	_, ok := a.made[k]
	delete(a.made, k)
	a.mu.Unlock()
	if ok {
		a.q.stats.aheadHits.Add(1)
	}
}

// usedWindows counts the leading n windows of p, taken from the window
// cache, as used.
func (a *aheadWorker) usedWindows(p *plan, n int) {
	if a == nil || n == 0 {
		return
	}
	a.mu.Lock()
	empty := len(a.made) == 0
	a.mu.Unlock()
	if empty {
		return
	}
	for i := range n {
		start, _ := p.geom.bounds(i)
		a.used(winKey{p.shape, start})
	}
}

// runQueued runs the queued jobs in the caller's goroutine, each at once,
// and returns how many it ran: for a Querier whose worker runs manually
// (tests and benchmarks, which run the jobs of a minute to completion
// before its move).
func (a *aheadWorker) runQueued(ctx context.Context) int {
	n := 0
	for j := a.next(); j != nil; j = a.next() {
		a.runJob(ctx, j)
		n++
	}
	return n
}

// close stops the worker and waits for it: a running job's context is
// cancelled; queued jobs are dropped. Idempotent.
func (a *aheadWorker) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.closed = true
	a.jobs = nil
	done := a.done
	a.mu.Unlock()
	a.cancel()
	if done != nil {
		<-done
	}
}
