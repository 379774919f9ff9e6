package ingest

// Freeing what nats-server keeps of a deleted consumer. nats-server 2.15.2
// and 2.15.3 remove a consumer from the stream's consumer list (and the
// store's) with append(list[:i], list[i+1:]...), which leaves the last
// element's pointer in the backing array past the new length: a consumer
// deleted while it was the last in the list stays reachable, its pending
// maps at their peak size (an entry per message delivered and not yet
// acked, up to MaxAckPending; Go maps never shrink), until another
// consumer is created on that stream or the stream is deleted. With the
// embedded server that is sketchd's own heap: about 50 bytes per peak
// entry (docs/operations.md, "Deleting a stream whose JetStream stream
// stays").

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// slotFiller is the config of a consumer that overwrites a stale slot. It
// is made to cost a stream that other applications use nothing: an
// ephemeral pull consumer that nobody fetches from delivers nothing, and
// from DeliverNew it starts at the stream's end without reading it (on the
// limits-retention streams sketchd reads, checkRetention, a consumer
// removes no message); its state lives in memory, with no consumer
// directory. Its inactive threshold is left to the server (an ephemeral
// consumer's default, 5 s, or the stream's consumer limit, which a longer
// one would exceed and be refused by): the server deletes a filler that
// sketchd could not delete itself (the connection lost between the two
// requests). It fits under the stream's MaxConsumers, since as many
// consumers were just deleted. An ephemeral consumer on a limits stream
// is R1 whatever the stream's replicas: on a replicated JetStream stream
// it takes the slot on one server only (not covered, docs/operations.md).
func slotFiller() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Description:   "sketchd: frees a deleted consumer's memory in nats-server, deleted at once",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		MemoryStorage: true,
	}
}

// fillConsumerSlots creates n idle consumers on the JetStream stream, all
// at once so that they overwrite the n slots past the end of its consumer
// lists where n deleted consumers may still be referenced, then deletes
// them: a slot then holds an idle consumer (the test's heap ends −0.13 to
// +0.13 MB from where it started) instead of a deleted one's peak. Best
// effort: a failure is logged, and what the server keeps is memory, not a
// wrong result.
func (m *Manager) fillConsumerSlots(ctx context.Context, js jetstream.JetStream, stream string, n int) {
	names := make([]string, 0, n)
	for range n {
		c, err := js.CreateConsumer(ctx, stream, slotFiller())
		if err != nil {
			m.log.Warn("create a consumer to free a deleted one's memory", "jetstream_stream", stream, "err", err)
			break
		}
		names = append(names, c.CachedInfo().Name)
	}
	for _, name := range names {
		if err := js.DeleteConsumer(ctx, stream, name); err != nil {
			m.log.Warn("delete the consumer that freed a deleted one's memory; the server deletes it when idle",
				"jetstream_stream", stream, "consumer", name, "err", err)
		}
	}
}
