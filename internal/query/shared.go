package query

import "context"

// QueryShared is Query for a caller that only reads the result, once,
// and keeps nothing of it (the API renders it into bytes, which it
// caches): the sketches of the final windows found in the window cache are
// the cache's own instead of copies, and the result cache is skipped (the
// caller caches what it makes of the result, and a copy out of the result
// cache is the clone this avoids). Cached sketches are warmed before they
// are shared (an HLL's estimate, the one read that writes), so concurrent
// readers are safe; modifying one corrupts the cache.
//
// Copying the cached sketches was a fifth of the cost of a question asked
// again after a commit (BenchmarkAnswerAfterCommit in internal/api).
func (q *Querier) QueryShared(ctx context.Context, t Target, qu Query) (*Result, error) {
	if err := t.covered(); err != nil {
		return nil, err
	}
	return q.query(ctx, t, qu, true)
}

// QueryMultiShared is QueryMulti with QueryShared's results.
func (q *Querier) QueryMultiShared(ctx context.Context, t Target, qu Query, aggregates []string) ([]*Result, error) {
	return q.queryMulti(ctx, t, qu, aggregates, true)
}
