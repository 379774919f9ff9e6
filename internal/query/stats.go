package query

import "sync/atomic"

// counters count the querier's work since New.
type counters struct {
	decoded  atomic.Int64 // stored sketches decoded
	winHits  atomic.Int64 // windows taken from the window cache
	edgeHits atomic.Int64 // final parts of edge windows taken from it

	pieceHits, pieceMisses atomic.Int64 // pieces (pieces.go) taken from it, computed
	pieceComposed          atomic.Int64 // pieces merged from narrower pieces
	pieceMerged            atomic.Int64 // group sketches merged from cached parts

	// ahead jobs (ahead.go): run, dropped (queue full), stale, failed;
	// entries they computed, and of those taken by a question
	aheadRun, aheadDropped, aheadStale, aheadFailed atomic.Int64
	aheadMade, aheadHits                            atomic.Int64
}

// Stats is the work a Querier has done since New.
type Stats struct {
	// Decoded is the number of stored sketches decoded: what a cache hit
	// saves. A dashboard repeating its queries while ingesting should
	// decode only the panes that are not final yet.
	Decoded int64
	// CachedWindows is the number of windows of answers taken whole from
	// the window cache (not merged again).
	CachedWindows int64
	// CachedEdges is the number of edge windows (a tumbling window holding
	// both final panes and the open tail's first) whose final part was
	// taken from the window cache (edgewin.go).
	CachedEdges int64
	// CachedPieces and ComputedPieces count the aligned pieces of windows
	// not starting on a multiple of their width (pieces.go) taken from the
	// window cache and computed from the keys' panes, blocks or tier
	// panes; ComposedPieces those merged from their narrower pieces
	// instead (a block from its panes', pieces.go: composedOf).
	CachedPieces, ComputedPieces, ComposedPieces int64
	// MergedParts is the number of group sketches merged into windows
	// and edge windows' final parts from parts the window cache keeps:
	// pieces, and a final part's prefix and last pane (edgewin.go).
	MergedParts int64
	// AheadJobs counts the jobs computing a minute ahead (ahead.go) by
	// outcome: run, dropped (the queue was full), stale (the tail start
	// had moved on) and failed; AheadEntries the window cache entries
	// they computed, AheadHits those a question took afterwards.
	AheadJobs               AheadJobs
	AheadEntries, AheadHits int64
}

// AheadJobs counts ahead jobs by outcome.
type AheadJobs struct{ Run, Dropped, Stale, Failed int64 }

// Stats returns the work done so far.
func (q *Querier) Stats() Stats {
	return Stats{Decoded: q.stats.decoded.Load(), CachedWindows: q.stats.winHits.Load(), CachedEdges: q.stats.edgeHits.Load(),
		CachedPieces: q.stats.pieceHits.Load(), ComputedPieces: q.stats.pieceMisses.Load(),
		ComposedPieces: q.stats.pieceComposed.Load(), MergedParts: q.stats.pieceMerged.Load(),
		AheadJobs: AheadJobs{Run: q.stats.aheadRun.Load(), Dropped: q.stats.aheadDropped.Load(),
			Stale: q.stats.aheadStale.Load(), Failed: q.stats.aheadFailed.Load()},
		AheadEntries: q.stats.aheadMade.Load(), AheadHits: q.stats.aheadHits.Load()}
}
