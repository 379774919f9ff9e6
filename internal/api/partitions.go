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
		out.Detail = append(out.Detail, partitionJSON{
			Partition: p.Partition, PositionSeq: p.PositionSeq,
			Watermark: timePtr(p.Watermark), CommittedAt: wallPtr(p.LastCommit),
		})
	}
	return out
}
