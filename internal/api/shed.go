package api

import (
	"sync"
	"time"
)

// An overloaded server must shed what it cannot serve in time, or a few
// seconds of overload become a queue that outlives them: with every query
// slot taken, each request waited up to Limits.QueueWait (1 s) for one; at
// 1,000 requests/s that held a thousand requests and their connections,
// the load tool opened thousands more, they overflowed the listen backlog,
// and the requests served were those that had already waited ten seconds
// (docs/benchmarks.md). CoDel's rule (Nichols and Jacobson, "Controlling
// Queue Delay", 2012) tells a standing queue from a burst: the queue is
// standing when it has not been empty for an interval. Then a request
// waits at most shedTarget for a slot; a burst still waits QueueWait.

const (
	shedInterval = 100 * time.Millisecond // a queue not empty this long stands
	shedTarget   = 20 * time.Millisecond  // the wait allowed behind a standing queue
	// The heavy lane (lanes.go) holds computations that take seconds at
	// load, ten times the cheap ones' by its threshold: its queue stands
	// after ten times as long and allows ten times the wait behind it.
	heavyShedInterval = 10 * shedInterval
	heavyShedTarget   = 10 * shedTarget
)

// slotQueue tracks the requests waiting for a query slot.
type slotQueue struct {
	mu      sync.Mutex
	waiting int
	since   time.Time // when waiting last became non-zero
}

// enter counts a request in the queue and returns how long the queue has
// not been empty (0 when it was).
func (q *slotQueue) enter(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waiting == 0 {
		q.since = now
	}
	q.waiting++
	return now.Sub(q.since)
}

func (q *slotQueue) leave() {
	q.mu.Lock()
	q.waiting--
	q.mu.Unlock()
}

// queueWait is how long a request of lane l that found no free slot (or
// heavy-lane token) may wait for one, given how long the lane's queue has
// stood: Limits.QueueWait (Limits.HeavyQueueWait in the heavy lane), or the
// lane's shed target behind a standing queue.
func (s *server) queueWait(l lane, standing time.Duration) time.Duration {
	if l == laneHeavy {
		if standing > heavyShedInterval {
			return min(s.limits.HeavyQueueWait, heavyShedTarget)
		}
		return s.limits.HeavyQueueWait
	}
	if standing > shedInterval {
		return min(s.limits.QueueWait, shedTarget)
	}
	return s.limits.QueueWait
}
