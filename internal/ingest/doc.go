// Package ingest brings events from NATS into sketchd: it runs the embedded
// nats-server (or connects to an external one), consumes each stream's
// subject (a durable JetStream pull consumer, or a core subscription),
// decodes events, feeds them to the stream's window.Aggregator, publishes
// invalid and too-late events to their dead-letter subjects, commits flushes
// to the store and acks JetStream only after the commit is durable.
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
// Per stream: the NATS client's delivery goroutine hands messages to a
// bounded channel (a full channel blocks it: backpressure, and for core NATS
// the client's pending limits then drop and count); one processing goroutine
// decodes, micro-batches and calls Process in source order; one flusher
// goroutine flushes, commits, acks and advances idle watermarks on a ticker.
// Stop drains the subscription, processes what was delivered, runs a final
// flush and commit, acks, and returns.
package ingest
