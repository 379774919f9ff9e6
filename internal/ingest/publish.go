package ingest

import (
	"context"
	"fmt"
)

// Publish publishes data, one NATS message, to subject. With jetStream it
// is a JetStream publish that waits for the stream's acknowledgement, so
// a nil error means the message is stored (and will be consumed, replay
// safe); it returns the message's stream sequence. Otherwise it is a core
// NATS publish followed by a flush: a nil error means the server has the
// message, which reaches the subscribers that are connected now (at most
// once); the sequence is 0. It serves the HTTP ingest endpoint.
func (m *Manager) Publish(ctx context.Context, subject string, jetStream bool, data []byte) (uint64, error) {
	if jetStream {
		ack, err := m.js.Publish(ctx, subject, data)
		if err != nil {
			return 0, fmt.Errorf("JetStream publish to %s: %w", subject, err)
		}
		return ack.Sequence, nil
	}
	if err := m.nc.Publish(subject, data); err != nil {
		return 0, fmt.Errorf("publish to %s: %w", subject, err)
	}
	if err := m.nc.FlushWithContext(ctx); err != nil {
		return 0, fmt.Errorf("publish to %s: flush: %w", subject, err)
	}
	return 0, nil
}

// MaxPayload is the largest message the server accepts from this
// connection (its max_payload, 1 MiB by default).
func (m *Manager) MaxPayload() int64 { return m.nc.MaxPayload() }
