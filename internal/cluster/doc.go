// Package cluster coordinates sketchd instances through NATS in cluster
// mode (docs/scale-out.md): the KV registry of stream specs, discovery of
// ready instances over a nats.go micro service, the assignment of
// partitions to instances (balanced rendezvous hashing), and the
// changelog that replicates each partition's committed panes and
// checkpoint through JetStream (the fenced atomic-batch writer, and the
// mirror that applies it to a local store).
//
// It holds no consensus or membership protocol of its own: JetStream
// (KV create, expected-last-subject-sequence, atomic batches) is the
// arbiter, and every function here is either pure (Assign) or a thin
// client of it.
package cluster
