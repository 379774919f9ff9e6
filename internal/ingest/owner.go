package ingest

// One stream in cluster mode (docs/scale-out.md §2.2-§2.4): a Mirror
// applies every partition's changelog to the local store, and a
// controller owns the partitions that balanced rendezvous assigns here.
//
// Claiming partition p: wait until the mirror has applied p's last
// checkpoint record, Hold p in the mirror, Claim it in the changelog (a
// fenced record with this instance and the next epoch), check that the
// store holds the claimed checkpoint, then start p's runner from it with
// the ChangelogCommitter; its own durable consumer
// (sketchd_<instance>_<stream>_pNN) is positioned at checkpoint + 1.
// Releasing p: stop the runner with a final commit, delete the durable,
// Release p to the mirror. A commit refused by the fence (another instance
// claimed p) stops the runner without a commit or an ack and drops its
// memory; p goes back to the mirror and is not claimed again for
// FailoverTimeout.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/store"
)

type clusterStream struct {
	m      *Manager
	c      *clusterMode // the mode that runs it
	info   store.StreamInfo
	cl     cluster.Changelog
	stream jetstream.Stream // the changelog's
	mirror *cluster.Mirror
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup

	fenced chan *runner // owned runners that met the fence

	mu      sync.Mutex
	owned   map[int]*runner
	stopped bool

	counts     ownCounters   // claims, releases, fenced commits (ownmetrics.go)
	unregister func()        // the ownership metrics'
	changed    atomic.Int64  // unix ns of the last local change (commit or mirror apply)
	mirrorSeen atomic.Uint64 // the mirror's records + panes when last looked at
}

// ownership is what an owned partition's runner commits through.
type ownership struct {
	cs     *clusterStream
	r      *runner // the partition's runner, set when it is made
	commit cluster.ChangelogCommitter
	epoch  uint64 // the claim's
	fenced atomic.Bool
}

func (m *Manager) newClusterStream(ctx context.Context, c *clusterMode, info store.StreamInfo, rev uint64) (*clusterStream, error) {
	_, js := m.conns()
	cl := cluster.Changelog{Cluster: c.opts.Name, Stream: info.Spec.Name, Rev: rev}
	began := time.Now()
	s, err := m.openChangelog(ctx, cl, c.creator(info.Spec.Name, rev), c.opts.Replicas)
	if err != nil {
		return nil, err
	}
	m.log.Debug("changelog ready", "stream", info.Spec.Name, "took", time.Since(began).Round(time.Millisecond))
	log := m.log.With("stream", info.Spec.Name)
	mirror, err := cluster.NewMirror(ctx, js, cl, info.Partitions, c.local, log, cluster.WithRegisterer(c.prom))
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(c.ctx)
	cs := &clusterStream{m: m, c: c, info: info, cl: cl, stream: s, mirror: mirror, log: log,
		ctx: cctx, cancel: cancel, fenced: make(chan *runner, len(info.Partitions)), owned: map[int]*runner{}}
	cs.changed.Store(time.Now().UnixNano())
	if cs.unregister, err = cs.registerOwnMetrics(c.prom); err != nil {
		mirror.Close()
		cancel()
		return nil, fmt.Errorf("stream %q: ownership metrics: %w", info.Spec.Name, err)
	}
	return cs, nil
}

// openChangelog returns the stream's changelog. Its registering instance
// creates it; the others wait a moment for it to appear before they
// create it themselves (concurrent creates of one R3 stream were seen to
// leave a request unanswered for the 10 s of an admin attempt).
func (m *Manager) openChangelog(ctx context.Context, cl cluster.Changelog, creator bool, replicas int) (jetstream.Stream, error) {
	_, js := m.conns()
	if !creator {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if s, err := js.Stream(ctx, cl.Name()); err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
				return s, nil
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	return cluster.EnsureChangelog(ctx, js, cl, replicas)
}

// start runs the mirror, the controller and the lag probe.
func (cs *clusterStream) start() {
	cs.done.Go(cs.runMirror)
	cs.done.Go(cs.control)
	cs.done.Go(cs.probeLag) // ownstatus.go
}

// runMirror applies the changelog until the stream stops. The mirror's
// run retries, itself, what reading the changelog can recover from (a
// stall, a failed read: cluster's restart.go logs those at warn); it
// ends with an error only when the store failed, the changelog is gone
// or the mirror's NATS connection closed for good. That is logged at
// error, and the run starts again a second later: a store error may
// pass; a deleted changelog recurs every second until the stream stops
// (it is not created again); a closed connection recurs until the
// replacement connection's rejoin (rejoin.go) stops this stream and
// starts a new one on it, moments later. An error the stream's own stop
// caused (its context ended) is no failure: not logged.
func (cs *clusterStream) runMirror() {
	for {
		err := cs.mirror.Run(cs.ctx)
		if cs.ctx.Err() != nil {
			return
		}
		cs.log.Error("changelog mirror stopped; starting it again", "err", err, "retry_in", time.Second)
		sleepCtx(cs.ctx, time.Second)
	}
}

// control claims and releases partitions as the member view changes.
func (cs *clusterStream) control() {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	notBefore := map[int]time.Time{}
	select { // members.go: a view of this instance alone would claim everything
	case <-cs.c.view.firstRound():
	case <-cs.ctx.Done():
		return
	}
	for {
		view, changed := cs.c.view.get()
		cs.reconcile(view, changed, notBefore)
		select {
		case <-cs.ctx.Done():
			return
		case <-changed:
		case <-retry.C:
		case r := <-cs.fenced:
			if cs.demote(r) {
				notBefore[r.part] = time.Now().Add(cs.c.opts.FailoverTimeout)
			}
		}
	}
}

// reconcile releases what is no longer assigned here, then claims what
// is; it returns early when the view changes (a claim can take seconds).
func (cs *clusterStream) reconcile(view []string, changed <-chan struct{}, notBefore map[int]time.Time) {
	owners := cluster.Assign(cs.info.Spec.Name, len(cs.info.Partitions), view)
	me := cs.m.instance
	for p, o := range owners {
		if o != me && cs.owns(p) {
			cs.release(cs.ctx, p, true, releaseRebalance)
		}
	}
	for p, o := range owners {
		select {
		case <-cs.ctx.Done():
			return
		case <-changed:
			return
		default:
		}
		if o != me || cs.owns(p) || time.Now().Before(notBefore[p]) {
			continue
		}
		if err := cs.claim(cs.ctx, p); err != nil && cs.ctx.Err() == nil {
			cs.log.Warn("partition claim failed; retrying", "partition", p, "err", err)
		}
	}
}

func (cs *clusterStream) owns(p int) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.owned[p] != nil
}

// claim takes partition p over: see the file comment.
func (cs *clusterStream) claim(ctx context.Context, p int) (err error) {
	defer func() { cs.counts.countClaim(ctx, err) }()
	began := time.Now()
	sid := cs.info.Partitions[p]
	nc, js := cs.m.conns()
	w := cluster.NewWriter(nc, js, cs.cl, p, cs.m.instance, cs.info.Spec, cs.c.opts)
	if err := cs.waitApplied(ctx, w, p); err != nil {
		// Not owned here, so no hold should be on: a Release makes the
		// mirror rewind and end any hold left over (a rewind signal lost
		// to a consume that ended at the same moment is one way).
		cs.mirror.Release(p)
		return err
	}
	cs.mirror.Hold(p)
	cctx, cancel := context.WithTimeout(ctx, claimBudget(cs.c.opts))
	rec, err := w.Claim(cctx)
	cancel()
	if err != nil {
		cs.mirror.Release(p)
		return err
	}
	cp, _, err := cs.m.db.Checkpoint(ctx, sid)
	if err != nil || cp.Position != rec.Checkpoint.Position {
		// A commit slipped in between the wait and the claim: let the
		// mirror apply it (and the claim record), and claim again.
		cs.mirror.Release(p)
		return fmt.Errorf("store at position %d, claim at %d (err %v)", sketchd.PositionSeq(cp.Position), sketchd.PositionSeq(rec.Checkpoint.Position), err)
	}
	own := &ownership{cs: cs, commit: cluster.ChangelogCommitter{Writer: w, Local: cs.c.local}, epoch: rec.Epoch}
	r, err := startPartRunner(ctx, cs.m, cs.info, p, own)
	if err != nil {
		cs.mirror.Release(p)
		return err
	}
	cs.mu.Lock()
	cs.owned[p] = r
	cs.mu.Unlock()
	cs.log.Info("partition claimed", "partition", p, "epoch", rec.Epoch, "position_seq", sketchd.PositionSeq(rec.Checkpoint.Position),
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// claimBudget bounds a claim's publish, which Writer.Claim sends again
// while the changelog does not answer (a leader election, a cluster just
// started): two attempts that wait out their PublishTimeout, or many that
// find no responder. Past it the claim counts as a timeout, and the
// controller tries again a second later.
func claimBudget(o cluster.Options) time.Duration { return 2 * o.PublishTimeout }

// waitApplied waits until the local store holds p's last checkpoint
// record (the running mirror applies it).
func (cs *clusterStream) waitApplied(ctx context.Context, w *cluster.Writer, p int) error {
	want, found, err := w.LastCheckpointSeq(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("last checkpoint record: %w", err)
	case !found:
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		have, _, err := cs.c.local.ChangelogSeq(wctx, cs.info.Partitions[p])
		if err == nil && have >= want {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the mirror has not applied record %d (store at %d): %w", want, have, wctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// release stops owning p: a final commit when final, the durable deleted,
// p back to the mirror; counted under reason.
func (cs *clusterStream) release(ctx context.Context, p int, final bool, reason int) {
	cs.mu.Lock()
	r := cs.owned[p]
	delete(cs.owned, p)
	cs.mu.Unlock()
	if r != nil {
		cs.counts.releases[reason].Add(1)
		cs.stopOwned(ctx, r, final)
	}
}

// stopOwned stops an owned runner that is no longer in cs.owned.
func (cs *clusterStream) stopOwned(ctx context.Context, r *runner, final bool) {
	p := r.part
	if !final {
		r.life.abandon() // nothing more is processed, committed or acked
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.stopOne(sctx, final); err != nil {
		cs.log.Warn("partition stop", "partition", p, "err", err)
	}
	_, js := cs.m.conns()
	if err := js.DeleteConsumer(sctx, cs.info.Spec.JetStreamStream, r.durable()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		cs.log.Warn("delete partition consumer", "partition", p, "err", err)
	}
	cs.mirror.Release(p)
	cs.log.Info("partition released", "partition", p, "final_commit", final,
		"position_seq", sketchd.PositionSeq(r.committer.last.Position))
}

// demote drops an owned runner whose commit met the fence; false when it
// was released meanwhile.
func (cs *clusterStream) demote(r *runner) bool {
	cs.mu.Lock()
	current := cs.owned[r.part] == r
	if current {
		delete(cs.owned, r.part)
	}
	cs.mu.Unlock()
	if !current {
		return false
	}
	cs.counts.releases[releaseFenced].Add(1)
	cs.log.Warn("partition fenced: another instance owns it; dropping it without a commit", "partition", r.part)
	cs.stopOwned(cs.ctx, r, false)
	return true
}

// shutdown stops the controller and the mirror, then releases every
// owned partition (final: with a final commit, as far as ctx allows),
// counted under reason.
func (cs *clusterStream) shutdown(ctx context.Context, final bool, reason int) {
	cs.cancel()
	cs.done.Wait()
	defer cs.unregister()
	defer cs.mirror.Close() // its metrics
	cs.mu.Lock()
	parts := make([]int, 0, len(cs.owned))
	for p := range cs.owned {
		parts = append(parts, p)
	}
	cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() { cs.release(ctx, p, final && ctx.Err() == nil, reason) })
	}
	wg.Wait()
}

// status is the stream's status in cluster mode: every partition's
// committed progress from the local store (its own commits and the
// mirror's), and the owned partitions' live counters.
func (cs *clusterStream) status(ctx context.Context) sketchd.StreamStatus {
	info := cs.info
	st := sketchd.StreamStatus{ID: info.ID, Spec: info.Spec, Created: info.Created, State: "running", Alters: info.Alters,
		Watermark: sketchd.NoTime, MaxEventTime: sketchd.NoTime, CommittedWatermark: sketchd.NoTime, Partitions: info.Partitions}
	cs.m.storedProgress(ctx, info, &st)
	cs.setOwnership(&st) // ownstatus.go
	if !cs.mirror.Restored() {
		st.State = "restoring"
	}
	ms := cs.mirror.Stats()
	if n := ms.Records + ms.Panes; cs.mirrorSeen.Swap(n) != n {
		cs.changed.Store(time.Now().UnixNano())
	}
	st.LastCommit = time.Unix(0, cs.changed.Load())
	// committed_at: an owned partition's last commit; a mirrored one's
	// is when this instance's copy last changed (the store does not keep
	// the owner's commit time).
	for i := range st.Coverage {
		if st.Coverage[i].PositionSeq > 0 {
			st.Coverage[i].LastCommit = st.LastCommit
		}
	}
	cs.mu.Lock()
	for p, r := range cs.owned {
		if at := r.committer.lastCommit.Load(); at > 0 && p < len(st.Coverage) {
			st.Coverage[p].LastCommit = time.Unix(0, at)
		}
		if e := r.lastErr(); e != "" && st.Error == "" {
			st.Error = fmt.Sprintf("partition %d: %s", r.part, e)
		}
	}
	cs.mu.Unlock()
	return st
}

// Commit implements cluster.Committer for an owned partition's runner:
// the changelog first, and the first fenced commit reported to the
// controller, which demotes the runner.
func (o *ownership) Commit(ctx context.Context, streamID uint32, f sketchd.Flush) error {
	if o.fenced.Load() {
		return cluster.ErrFenced
	}
	err := o.commit.Commit(ctx, streamID, f)
	switch {
	case errors.Is(err, cluster.ErrFenced):
		o.cs.counts.fenced.Add(1)
		if !o.fenced.Swap(true) {
			select {
			case o.cs.fenced <- o.r:
			default: // the controller stopped; shutdown stops the runner
			}
		}
	case err == nil:
		o.cs.changed.Store(time.Now().UnixNano())
	}
	return err
}

// waitConsumerLeader waits (at most 10 s) until a just created or reset
// replicated consumer has a leader: pulls before that get "no responders",
// and the consume loop then waited for a missed heartbeat (~30 s, seen
// under load) before it pulled again.
func waitConsumerLeader(ctx context.Context, cons jetstream.Consumer) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		info, err := cons.Info(wctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
			return
		}
		select {
		case <-wctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
