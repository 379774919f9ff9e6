// Package decode turns NATS message payloads into sketchd.Events for one
// stream: it is the pure function between the bytes on the wire and the
// aggregator, with no I/O and no clock.
//
// A Decoder is compiled once from a stream spec (New) and reused. Its one
// method, Decode, splits a message into events (one JSON object, or many
// newline-delimited), validates each, and reports each exactly once, in
// order, either as an event or as a rejection with a stable Reason.
//
// The package is cut along its seams:
//
//	decoder.go  the Decoder, its options and compilation; message framing
//	paths.go    the trie of the dotted paths a stream needs
//	scan.go     the JSON scanner: validates a value, records the paths' spans
//	event.go    event building: key, time and aggregate values from the spans
//	time.go     time parsing: RFC 3339 and unix s/ms/us/ns, exact to the ns
//	reason.go   why an event was rejected
//
// docs/decoding.md states the semantics, limits and measurements.
package decode
