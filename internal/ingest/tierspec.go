package ingest

import (
	"context"
	"maps"
	"slices"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// SetRollups gives an existing stream new rollup tiers (the only part of a
// spec that may change): it validates the new spec, stores it, and
// restarts the stream's runner, whose builder then builds the new tiers
// from the stored panes in the background (resuming after a restart; see
// the status's rollups). Tiers kept keep what they built; removed ones are
// dropped. Errors: sketchd.ErrNotFound, a validation error (*FieldError
// joined), or the store's.
func (m *Manager) SetRollups(ctx context.Context, name string, rollups []sketchd.Rollup) (sketchd.StreamStatus, error) {
	if err := m.notInCluster("rollups"); err != nil {
		return sketchd.StreamStatus{}, err
	}
	info, err := m.db.Stream(ctx, name)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	spec := info.Spec
	spec.Aggregates = maps.Clone(spec.Aggregates) // Normalize writes it; the stored one is shared
	spec.Rollups = slices.Clone(rollups)
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return sketchd.StreamStatus{}, err
	}
	info, err = m.setRollups(ctx, info, spec.Rollups)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	m.mu.Lock()
	r := m.runners[name]
	delete(m.runners, name)
	m.mu.Unlock()
	if r != nil {
		if err := r.stop(ctx, true); err != nil {
			m.log.Warn("stop stream for new rollups", "stream", name, "err", err)
		}
	}
	if err := m.startRunner(ctx, info); err != nil {
		m.log.Error("stream failed to restart with new rollups", "stream", name, "err", err)
	}
	return m.statusOf(ctx, info), nil
}

// setRollups stores the stream's new tiers as an alter of its rollups
// (the configuration's path, and SetRollups'): the same store write as a
// PATCH, so the change is in the stream's alter log like any other. Tiers
// that do not change store nothing.
func (m *Manager) setRollups(ctx context.Context, info store.StreamInfo, rollups []sketchd.Rollup) (store.StreamInfo, error) {
	spec, changes, err := info.Spec.Apply(sketchd.StreamAlter{Rollups: &rollups})
	if err != nil {
		return info, err
	}
	if len(changes) == 0 {
		return info, nil
	}
	return m.db.AlterStream(ctx, info.Spec.Name, spec, sketchd.Alteration{At: m.now().UTC(), Changes: changes})
}

// onlyRollupsDiffer reports whether two specs differ in their rollups
// only: a configured stream may add or change tiers of a stored one.
func onlyRollupsDiffer(stored, configured sketchd.Stream) bool {
	stored.Rollups, configured.Rollups = nil, nil
	return sameSpec(stored, configured) == nil
}
