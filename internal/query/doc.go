// Package query answers queries over stored panes: one aggregate of one
// stream over a time range, as a whole range, a tumbling series (step) or a
// sliding series (window wider than step), filtered by where and regrouped
// by a subset of the key's dimensions.
//
// A Querier reads only the store, through a small consumer-side interface
// (PaneReader; store.DB implements it), as of the stream's last commit
// (Target); it shares nothing with the aggregator. Finality comes from the
// committed watermark through sketchd.Stream's PaneFinalAt and
// WindowFinalAt, the rule the aggregator finalizes by.
//
// # Steps
//
// A query is compiled into a plan (plan.go) and run in named steps: select
// keys (from the key index, with the limits checked before any pane is
// read), plan scans (cached rollup blocks go straight to their windows, the
// rest of the range becomes store reads shared by keys that need the same
// ranges), scan (each pane to its windows, or into the block it belongs
// to), merge windows (one sketch.MergeAll per window).
//
// # Caches
//
// A rollup block is the merge of blockPanes consecutive panes of one key;
// blockStandsForPanes is the one rule that says when it may replace its
// panes in a result. Decoded final panes and blocks never change, so they
// are kept in one LRU under a byte budget, with the final slots of the
// ragged ends where a key has no pane (edge.go); the final windows of
// tumbling series are kept per query shape (cachewin.go), so that after a
// commit only the windows from the first one not final on are computed;
// whole results are kept per last commit, and concurrent identical queries
// run once.
//
// # Cost
//
// Before any pane is read, a query's output windows (from the key index)
// and the bytes its planned reads hold (cost.go) are checked against the
// limits, and the bytes are reserved in the server's budget for running
// queries (budget.go).
package query
