// Package ingest brings events from NATS into sketchd: it runs the embedded
// nats-server (or connects to an external one), consumes each stream's
// subject (a durable JetStream pull consumer, or a core subscription),
// decodes events (internal/decode), feeds them to the stream's
// window.Aggregator, publishes invalid and too-late events to their
// dead-letter subjects, commits flushes to the store and acks JetStream
// only after the commit is durable.
//
// # Delivery guarantees
//
// JetStream streams are effectively-once: a flush commits the dirty panes
// (each carrying the highest source position applied to it) and a checkpoint
// (position, watermark, counters), syncs the store, and only then acks the
// last message it covers (AckAll). After a crash the consumer redelivers
// everything unacked; messages at or below the checkpoint are ignored whole
// and events already contained in a pane written by an unfinished flush are
// skipped by that pane's applied position.
//
// Core NATS streams are at-most-once: there is nothing to replay from. The
// client drops messages when its pending buffer is full (a slow consumer);
// the drops are counted per stream and exported, never hidden.
//
// # Goroutines
//
// A Manager runs one runner per stream (runner.go). A runner's work is cut
// in three parts, each owned by one goroutine, in its own file that names
// the fields it owns:
//
//   - the consumer (consumer.go): the core subscription or the JetStream
//     consumer, delivery in stream order, consumer resets after lost
//     deliveries and reconnections, the drain at stop;
//   - the intake (intake.go): the bounded queue the NATS client sends to (a
//     full queue blocks it: backpressure, and for core NATS the client's
//     pending limits then drop and count), decoding, micro-batching,
//     Process in source order, dead letters;
//   - the committer (committer.go): every flush interval, tick → flush →
//     commit → ack; on a failed commit, retries with backoff and closes the
//     intake gate.
//
// One errgroup starts the three and waits for them. Stop drains the
// subscription, processes what was delivered, runs a final flush and
// commit, acks, and returns; its context bounds the wait.
//
// # Status
//
// The runner publishes the stream's status (status.go) as an immutable
// snapshot, swapped atomically after each batch, tick, commit and consumer
// refresh. Manager.Get and List, the metrics and readiness read it without
// taking any lock that ingestion holds: a query never waits for ingestion.
package ingest
