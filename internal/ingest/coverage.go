package ingest

import (
	"context"
	"slices"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// Coverage (docs/scale-out.md §2.5): a partition is covered unless its
// store ID carries the store's restoring mark, which a cluster mirror sets
// while its first restore of the partition is incomplete. A single node
// never sets it, so it covers every partition. Queries of a status with
// an uncovered partition are refused (query.Target, partitions_unavailable).

// restoringStore reads the restoring marks; *store.DB implements it. A
// Store without it covers every partition.
type restoringStore interface {
	Restoring(ctx context.Context, streamID uint32) (bool, error)
}

// markUncovered sets Uncovered on each partition of st (in info's store
// IDs) that is being restored. st.Coverage is copied before it changes:
// a runner's published snapshot shares it. A mark that cannot be read
// counts as covered: the query then meets the store's own error.
func (m *Manager) markUncovered(ctx context.Context, info store.StreamInfo, st *sketchd.StreamStatus) {
	ids := info.Partitions
	if len(ids) == 0 {
		ids = []uint32{info.ID}
	}
	copied := false
	for i, p := range st.Coverage {
		if p.Partition < 0 || p.Partition >= len(ids) {
			continue
		}
		if on, err := m.restoring(ctx, ids[p.Partition]); err != nil || !on {
			continue
		}
		if !copied {
			st.Coverage, copied = slices.Clone(st.Coverage), true
		}
		st.Coverage[i].Uncovered = true
	}
}

// restoring reads store ID id's restoring mark; false when the Store has
// none.
func (m *Manager) restoring(ctx context.Context, id uint32) (bool, error) {
	rs, ok := m.db.(restoringStore)
	if !ok {
		return false, nil
	}
	return rs.Restoring(ctx, id)
}
