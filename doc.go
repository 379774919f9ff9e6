// Package sketchd holds the domain types every sketchd package shares: the
// stream spec (what to read from NATS and which sketches to keep), the decoded
// event, the pane identity and the records that flow between the window and
// the store. It does no I/O.
//
// The packages below it each have one job:
//
//	sketch/  the four sketch kinds, their merge, bounds and wire format
//	window/  event time: panes, watermarks, lateness, finality
//	query/   queries: stored panes merged into windows, rollup blocks, caches
//	store/   Badger persistence (the only package that imports Badger)
//	decode/  event decoding: message bytes to events, pure
//	ingest/  NATS in: consumers, batching, dead letters, ack after commit
//	api/     the REST API (the only package that imports chi)
package sketchd
