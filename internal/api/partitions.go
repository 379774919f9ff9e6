package api

import "github.com/sketchd/sketchd"

// partitionsJSON is the coverage block of an answer: which of the stream's
// partitions it covers, and how far each one's committed state reaches
// (docs/scale-out.md §2.5). An unpartitioned stream is one partition, 0.
// On a single node every partition is covered: the store holds the state
// of all of them, committed or not yet.
type partitionsJSON struct {
	Count   int             `json:"count"`
	Covered []int           `json:"covered"`
	Detail  []partitionJSON `json:"detail"`
}

type partitionJSON struct {
	Partition   int     `json:"partition"`
	PositionSeq uint64  `json:"position_seq"`
	Watermark   *string `json:"watermark"`
	CommittedAt *string `json:"committed_at"`
	// Cluster mode only (sketchd.PartitionOwnership); omitted on a single
	// node, whose answers are unchanged.
	Owner         *string `json:"owner,omitempty"`
	MirrorPending *uint64 `json:"mirror_pending,omitempty"`
}

// renderPartitions is the coverage block of an answer read from st.
func renderPartitions(st *sketchd.StreamStatus) partitionsJSON {
	out := partitionsJSON{Count: max(st.Spec.Partitions, 1), Covered: []int{}, Detail: []partitionJSON{}}
	cov := st.Coverage
	if len(cov) == 0 { // a status without per-partition progress: the stream's
		for p := range out.Count {
			cov = append(cov, sketchd.PartitionState{Partition: p, Watermark: st.CommittedWatermark, LastCommit: st.LastCommit})
		}
	}
	for _, p := range cov {
		out.Covered = append(out.Covered, p.Partition)
		d := partitionJSON{
			Partition: p.Partition, PositionSeq: p.PositionSeq,
			Watermark: timePtr(p.Watermark), CommittedAt: wallPtr(p.LastCommit),
		}
		if o := p.Ownership; o != nil {
			d.Owner, d.MirrorPending = &o.Owner, &o.MirrorPending
		}
		out.Detail = append(out.Detail, d)
	}
	return out
}

// statusPartitions is the coverage block of a stream's status: in
// cluster mode only (where it carries each partition's owner), nil on a
// single node, whose status is unchanged.
func statusPartitions(st *sketchd.StreamStatus) *partitionsJSON {
	for _, p := range st.Coverage {
		if p.Ownership != nil {
			out := renderPartitions(st)
			return &out
		}
	}
	return nil
}
