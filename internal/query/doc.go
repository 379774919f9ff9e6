// Package query answers queries over stored panes: one aggregate of one
// stream over a time range, as a whole range, a tumbling series (step) or a
// sliding series (window wider than step), filtered by where and regrouped
// by a subset of the key's dimensions.
//
// A Querier reads only the store, through a small consumer-side interface
// (PaneReader; store.DB implements it), as of the stream's last commit
// (Target); it shares nothing with the aggregator. Finality comes
// from the committed watermark through sketchd.Stream's PaneFinalAt and
// WindowFinalAt, the rule the aggregator finalizes by.
//
// Decoded final panes and rollup blocks (the merge of blockPanes
// consecutive final panes of one key) are cached, since they never change;
// so are whole results, per last commit, with concurrent identical queries
// run once.
package query
