package query

// ScaleCaches keeps the pane and window caches, the query caches that hold
// the most, within s of their budgets (0 < s ≤ 1; 1: the budgets Options
// gave), evicting their least recently used entries at once. The process's
// memory limiter (internal/memlimit) turns them down while the rest of the
// heap leaves the garbage collector too little room, and back up after.
func (q *Querier) ScaleCaches(s float64) {
	s = min(max(s, 0), 1)
	if q.cache.max > 0 {
		q.cache.items.setMax(int64(float64(q.cache.max) * s))
	}
	if q.wins != nil {
		q.wins.items.setMax(int64(float64(q.wins.max) * s))
	}
}

// CacheBytes returns what the pane and window caches hold and their
// budgets at scale 1 (Options.CacheBytes and WindowCacheBytes).
func (q *Querier) CacheBytes() (held, budget int64) {
	held = q.cache.stats().bytes + q.wins.stats().bytes
	budget = max(q.cache.max, 0)
	if q.wins != nil {
		budget += q.wins.max
	}
	return held, budget
}
