package ingest

import (
	"context"
	"slices"
	"time"

	"github.com/sketchd/sketchd"
)

// setOwnership fills each partition's ownership in a cluster stream's
// status (sketchd.PartitionOwnership): the owner the changelog names as
// the mirror read it (this instance for a partition it owns under a claim
// at least as recent), "" when there is none or the named instance is no
// longer a live member here; and the mirror's pending sequences.
func (cs *clusterStream) setOwnership(st *sketchd.StreamStatus) {
	view, _ := cs.c.view.get()
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

// probeLag keeps each partition's mirror_pending its own while the mirror
// lags: every discovery interval in which the mirror knows of changelog
// sequences it has not processed, a probe reads the partitions' last
// records (cluster.Mirror.ProbeTails: one stream info and a direct get
// per partition). An idle or current mirror costs nothing.
func (cs *clusterStream) probeLag() {
	every := cs.c.opts.DiscoveryInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-cs.ctx.Done():
			return
		case <-t.C:
		}
		if !cs.mirror.Lagging() {
			continue
		}
		pctx, cancel := context.WithTimeout(cs.ctx, max(every, time.Second))
		if err := cs.mirror.ProbeTails(pctx); err != nil && cs.ctx.Err() == nil {
			cs.log.Debug("changelog lag probe", "err", err)
		}
		cancel()
	}
}
