package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBusy: the queries running hold the whole memory budget of the server
// (Options.TotalQueryBytes) and none released enough of it within
// Options.BudgetWait. Retry later.
var ErrBusy = errors.New("query memory budget exhausted")

// budget is the memory the queries running at once may hold, in estimated
// bytes (cost.bytes), so that N heavy queries cannot hold more than its
// size together, however many requests are admitted. It is not FIFO: a
// query that fits goes ahead of a larger one waiting (which gives up after
// the wait), so one heavy query cannot stall every small one behind it.
type budget struct {
	mu    sync.Mutex
	total int64 // 0: no server budget
	used  int64
	freed chan struct{} // closed and replaced at every release
	wait  time.Duration
}

func newBudget(total int64, wait time.Duration) *budget {
	return &budget{total: max(total, 0), wait: wait, freed: make(chan struct{})}
}

// acquire reserves the c.bytes() of a computation (at most the whole
// budget), waiting up to b.wait for queries to release theirs, after the
// context's cost hook admitted the computation (admission.go). The caller
// calls the returned release once.
func (b *budget) acquire(ctx context.Context, c cost) (release func(), err error) {
	if err := admitCost(ctx, c); err != nil {
		return nil, err
	}
	n := c.bytes()
	if b.total == 0 || n <= 0 {
		return func() {}, nil
	}
	n = min(n, b.total)
	var timeout <-chan time.Time
	for {
		b.mu.Lock()
		if b.used+n <= b.total {
			b.used += n
			b.mu.Unlock()
			return func() { b.release(n) }, nil
		}
		freed := b.freed
		b.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(b.wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-freed:
		case <-timeout:
			return nil, fmt.Errorf("%w: this query needs an estimated %d bytes of the %d the running queries share; waited %s", ErrBusy, n, b.total, b.wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}
