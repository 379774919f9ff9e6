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
// are kept in one LRU under a byte budget; whole results are kept per last
// commit, and concurrent identical queries run once.
package query
