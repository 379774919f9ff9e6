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
	stopErr := m.stopForAlter(ctx, name)
	added := sketchd.AddedAggregates(info.Spec, spec)
	var bf sketchd.BackfillStatus
	backfill := false
	if len(added) > 0 {
		var note string
		if bf, backfill, note, err = m.addAggregates(ctx, info.ID, &spec, added, a.Backfill, stopErr); err != nil {
			_ = m.startRunner(ctx, info) // unchanged: run it again
			return sketchd.StreamStatus{}, err
		}
		if note != "" {
			changes = append(changes, note)
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

// stopForAlter stops the stream's runner, if it runs, with a final
// commit, and forgets it (and a failure to start it); the error is the
// final commit's, logged.
func (m *Manager) stopForAlter(ctx context.Context, name string) error {
	m.mu.Lock()
	r := m.runners[name]
	delete(m.runners, name)
	delete(m.failed, name)
	m.mu.Unlock()
	if r == nil {
		return nil
	}
	err := r.stop(ctx, true)
	if err != nil {
		m.log.Warn("stop stream for an alter", "stream", name, "err", err)
	}
	return err
}

// addAggregates readies the aggregates an alter adds to the stream id's
// spec (startAggregates) and, with backfill, plans and stores their
// backfill, returning it, whether there is one, and the line the
// alteration's changes get for it. An added aggregate starts after the
// checkpoint: without the final commit (stopErr, from stopForAlter),
// events already applied to stored panes would be skipped as replays and
// never reach it, so the alter is refused.
func (m *Manager) addAggregates(ctx context.Context, id uint32, spec *sketchd.Stream, added []string, backfill bool, stopErr error) (bf sketchd.BackfillStatus, planned bool, note string, err error) {
	if stopErr != nil {
		return bf, false, "", fmt.Errorf("the stream's final commit before the alter failed (%w): %w", stopErr, sketchd.ErrUnavailable)
	}
	if err := m.startAggregates(ctx, id, spec, added); err != nil {
		return bf, false, "", err
	}
	if !backfill {
		return bf, false, "", nil
	}
	if bf, planned, err = m.planBackfill(ctx, id, spec, added); err == nil && planned {
		err = m.db.SetBackfill(ctx, id, bf)
	}
	if err != nil {
		return bf, false, "", err
	}
	if !planned {
		return bf, false, "backfill: nothing to replay (the stream applied no event that JetStream still holds)", nil
	}
	return bf, true, fmt.Sprintf("backfill of %s: JetStream sequences %d..%d", strings.Join(added, ", "), bf.From, bf.To), nil
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
