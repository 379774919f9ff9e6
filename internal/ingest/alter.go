package ingest

import (
	"context"
	"time"

	"github.com/sketchd/sketchd"
)

// Alter applies a to a stream under its name's lock: the runner is
// stopped with a final commit (what it holds becomes durable under the old
// spec), the new spec and the alter's record are stored in one store
// transaction, and the runner starts again from its checkpoint with the
// new spec. An alter that changes nothing returns the status unchanged.
func (m *Manager) Alter(ctx context.Context, name string, a sketchd.StreamAlter) (sketchd.StreamStatus, error) {
	unlock := m.names.lock(name)
	defer unlock()
	info, err := m.db.Stream(ctx, name)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	spec, changes, err := info.Spec.Apply(a)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	if len(changes) == 0 {
		return m.statusOf(ctx, info), nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	m.mu.Lock()
	r := m.runners[name]
	delete(m.runners, name)
	delete(m.failed, name)
	m.mu.Unlock()
	if r != nil {
		if err := r.stop(ctx, true); err != nil {
			m.log.Warn("stop stream for an alter", "stream", name, "err", err)
		}
	}
	next, err := m.db.AlterStream(ctx, name, spec, sketchd.Alteration{At: m.now().UTC(), Changes: changes})
	if err != nil {
		_ = m.startRunner(ctx, info) // unchanged: run it again
		return sketchd.StreamStatus{}, err
	}
	m.log.Info("stream altered", "stream", name, "changes", changes)
	if err := m.startRunner(ctx, next); err != nil {
		m.log.Error("stream failed to start after an alter", "stream", name, "err", err)
	}
	return m.statusOf(ctx, next), nil
}
