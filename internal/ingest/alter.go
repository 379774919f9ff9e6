package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sketchd/sketchd"
)

// Alter applies a to a stream under its name's lock: the runner is
// stopped with a final commit (what it holds becomes durable under the old
// spec), the new spec and the alter's record are stored in one store
// transaction, and the runner starts again from its checkpoint with the
// new spec. Aggregates the alter adds start at the first pane after the
// checkpoint's highest event time (Stream.StartAggregates): every event
// after the checkpoint reaches them. An alter that changes nothing returns the status unchanged.
func (m *Manager) Alter(ctx context.Context, name string, a sketchd.StreamAlter) (sketchd.StreamStatus, error) {
	if err := m.notInCluster("alter"); err != nil {
		return sketchd.StreamStatus{}, err
	}
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
	if m.backfilling(name) {
		return sketchd.StreamStatus{}, fmt.Errorf("a backfill of the stream is running (its progress is in the status); alter it when the backfill is done: %w", sketchd.ErrUnavailable)
	}
	if n := len(spec.Aggregates); n > m.opts.MaxAggregates && n > len(info.Spec.Aggregates) {
		return sketchd.StreamStatus{}, &sketchd.LimitError{Limit: "max_aggregates", Max: m.opts.MaxAggregates, Got: n}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	m.mu.Lock()
	r := m.runners[name]
	delete(m.runners, name)
	delete(m.failed, name)
	m.mu.Unlock()
	var stopErr error
	if r != nil {
		if stopErr = r.stop(ctx, true); stopErr != nil {
			m.log.Warn("stop stream for an alter", "stream", name, "err", stopErr)
		}
	}
	added := sketchd.AddedAggregates(info.Spec, spec)
	var bf sketchd.BackfillStatus
	backfill := false
	if len(added) > 0 {
		// An added aggregate starts after the checkpoint: without a final
		// commit, events already applied to stored panes would be skipped
		// as replays and never reach it.
		if stopErr != nil {
			_ = m.startRunner(ctx, info)
			return sketchd.StreamStatus{}, fmt.Errorf("the stream's final commit before the alter failed (%w): %w", stopErr, sketchd.ErrUnavailable)
		}
		if err := m.startAggregates(ctx, info.ID, &spec, added); err != nil {
			_ = m.startRunner(ctx, info)
			return sketchd.StreamStatus{}, err
		}
		if a.Backfill {
			if bf, backfill, err = m.planBackfill(ctx, info.ID, &spec, added); err == nil && backfill {
				err = m.db.SetBackfill(ctx, info.ID, bf)
			}
			if err != nil {
				_ = m.startRunner(ctx, info)
				return sketchd.StreamStatus{}, err
			}
			if backfill {
				changes = append(changes, fmt.Sprintf("backfill of %s: JetStream sequences %d..%d", strings.Join(added, ", "), bf.From, bf.To))
			} else {
				changes = append(changes, "backfill: nothing to replay (the stream applied no event that JetStream still holds)")
			}
		}
	}
	next, err := m.db.AlterStream(ctx, name, spec, sketchd.Alteration{At: m.now().UTC(), Changes: changes})
	if err != nil {
		_ = m.startRunner(ctx, info) // unchanged: run it again
		return sketchd.StreamStatus{}, err
	}
	m.log.Info("stream altered", "stream", name, "changes", changes)
	if backfill {
		m.startBackfill(next, bf) // it starts the runner when it ends
		return m.statusOf(ctx, next), nil
	}
	if err := m.startRunner(ctx, next); err != nil {
		m.log.Error("stream failed to start after an alter", "stream", name, "err", err)
	}
	return m.statusOf(ctx, next), nil
}

// startAggregates sets Since on the aggregates an alter adds, from the
// checkpoint the stopped runner left (none: the stream has seen nothing
// and they cover everything).
func (m *Manager) startAggregates(ctx context.Context, id uint32, spec *sketchd.Stream, added []string) error {
	cp, ok, err := m.db.Checkpoint(ctx, id)
	if err != nil {
		return err
	}
	maxEvent := int64(sketchd.NoTime)
	if ok {
		maxEvent = cp.MaxEventTime
	}
	spec.StartAggregates(added, maxEvent)
	return nil
}
