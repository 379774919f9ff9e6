package cluster

import (
	"context"
	"fmt"
)

// Coverage (docs/scale-out.md §2.5): until a mirror's first restore of a
// partition reaches the changelog's head, the partition's state in the
// store is not whole (a superseded pane is missing until its newer
// version arrives), and answers must not cover it. The mirror says so
// through the store's restoring mark, which the stream's status reads:
// set before a fresh partition (nothing applied yet) applies anything,
// cleared once the mirror is Restored. The mark survives a crash, so a
// restore cut short stays uncovered until a later one completes; a warm
// store (something applied, no mark) is covered at once, as of what it
// holds.

// restoreMarker is the store's restoring mark (*store.DB implements it).
// A ChangelogStore without it marks nothing.
type restoreMarker interface {
	Restoring(ctx context.Context, streamID uint32) (bool, error)
	SetRestoring(ctx context.Context, streamID uint32, on bool) error
}

// loadMarks reads each partition's restoring mark (NewMirror).
func (m *Mirror) loadMarks(ctx context.Context) error {
	rm, ok := m.store.(restoreMarker)
	if !ok {
		return nil
	}
	for p, sid := range m.sids {
		on, err := rm.Restoring(ctx, sid)
		if err != nil {
			return fmt.Errorf("cluster: mirror of %s, partition %d: %w", m.cl.Stream, p, err)
		}
		m.marked[p] = on
	}
	return nil
}

// markFresh marks restoring every partition that has applied nothing
// while the changelog holds records (head > 0), before the first pass
// applies any of them.
func (m *Mirror) markFresh(ctx context.Context, head uint64) error {
	rm, ok := m.store.(restoreMarker)
	if !ok || m.restored.Load() || head == 0 {
		return nil
	}
	for p, sid := range m.sids {
		if m.applied[p] != 0 || m.marked[p] {
			continue
		}
		if err := rm.SetRestoring(ctx, sid, true); err != nil {
			return fmt.Errorf("cluster: mirror of %s, partition %d: %w", m.cl.Stream, p, err)
		}
		m.marked[p] = true
	}
	return nil
}

// setRestored clears the restoring marks, then reports the mirror
// Restored.
func (m *Mirror) setRestored(ctx context.Context) error {
	if rm, ok := m.store.(restoreMarker); ok {
		for p, sid := range m.sids {
			if !m.marked[p] {
				continue
			}
			if err := rm.SetRestoring(ctx, sid, false); err != nil {
				return fmt.Errorf("cluster: mirror of %s, partition %d: %w", m.cl.Stream, p, err)
			}
			m.marked[p] = false
		}
	}
	m.restored.Store(true)
	return nil
}
