package ingest

import (
	"slices"

	"github.com/sketchd/sketchd"
)

// setOwnership fills each partition's ownership in a cluster stream's
// status (sketchd.PartitionOwnership): the owner the changelog names as
// the mirror read it (this instance for a partition it owns under a claim
// at least as recent), "" when there is none or the named instance is no
// longer a live member here; and the mirror's pending sequences.
func (cs *clusterStream) setOwnership(st *sketchd.StreamStatus) {
	view, _ := cs.m.cluster.view.get()
	epochs := cs.ownedEpochs() // ownmetrics.go
	for i := range st.Coverage {
		p := st.Coverage[i].Partition
		owner, epoch := cs.mirror.Owner(p)
		if e, mine := epochs[p]; mine && e >= epoch {
			owner = cs.m.instance
		}
		if !slices.Contains(view, owner) {
			owner = ""
		}
		st.Coverage[i].Ownership = &sketchd.PartitionOwnership{Owner: owner, MirrorPending: cs.mirror.Pending(p)}
	}
}
