package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy: the queries running hold the whole memory budget of the server
// (Options.TotalQueryBytes) and none released enough of it within
// Options.BudgetWait. Retry later.
var ErrBusy = errors.New("query memory budget exhausted")

// budget is the memory the queries running at once may hold, in estimated
// bytes (cost.bytes): a weighted semaphore, so N heavy queries cannot hold
// more than its size together, however many requests are admitted.
type budget struct {
	sem   *semaphore.Weighted // nil: no server budget
	total int64
	wait  time.Duration
}

func newBudget(total int64, wait time.Duration) *budget {
	if total <= 0 {
		return &budget{}
	}
	return &budget{sem: semaphore.NewWeighted(total), total: total, wait: wait}
}

// acquire reserves n bytes (at most the whole budget), waiting up to b.wait
// for queries to release theirs. The caller calls the returned release once.
func (b *budget) acquire(ctx context.Context, n int64) (release func(), err error) {
	if b.sem == nil || n <= 0 {
		return func() {}, nil
	}
	n = min(n, b.total)
	if !b.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, b.wait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: this query needs an estimated %d bytes of the %d the running queries share; waited %s", ErrBusy, n, b.total, b.wait)
		}
	}
	return func() { b.sem.Release(n) }, nil
}
