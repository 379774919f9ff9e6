package ingest

// Cluster mode (docs/scale-out.md §2): several instances share the
// partitions of every stream. The stream specs live in the cluster's
// registry (a KV bucket): a create or delete goes through it, and every
// instance applies its Watch events locally. Each stream has a changelog
// that a Mirror applies to the local store, and a controller (owner.go)
// that claims the partitions balanced rendezvous assigns to this instance
// over the live members (discovery through micro) and releases the others.
// Without JoinCluster the Manager is single-node, exactly as before.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/store"
)

// clusterMode is the Manager's cluster state; nil on a single node.
type clusterMode struct {
	opts  cluster.Options
	reg   *cluster.Registry
	prom  prometheus.Registerer // the mirrors' metrics; nil: none
	local cluster.ChangelogStore
	ann   *cluster.Announcement
	view  memberView

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	synced chan struct{} // closed once the registry's current specs are applied

	// left is set once the mode has left the cluster for a replaced NATS
	// connection (rejoin.go): readiness fails until the next mode joins.
	left atomic.Bool

	mu      sync.Mutex
	streams map[string]*clusterStream
	created map[string]uint64 // registry revisions this instance created (it makes their changelogs)
}

// JoinCluster puts the Manager in cluster mode; call it before Start.
// o.Name must be set. The instance id (Options.InstanceID, else the
// store's) names this instance to the others. The store must implement
// cluster.ChangelogStore (*store.DB does). Each stream's mirror registers
// its metrics on prom (nil: none).
func (m *Manager) JoinCluster(ctx context.Context, o cluster.Options, prom prometheus.Registerer) error {
	o, err := o.Normalize()
	if err != nil {
		return err
	}
	if o.Name == "" {
		return fmt.Errorf("%w: no cluster_name", cluster.ErrInvalidOptions)
	}
	local, ok := m.db.(cluster.ChangelogStore)
	if !ok {
		return errors.New("ingest: the store cannot apply a changelog")
	}
	c, err := m.openCluster(ctx, o, prom, local)
	if err != nil {
		return err
	}
	m.cluster.Store(c)
	return nil
}

// openCluster opens the cluster's registry on the current connection and
// returns a mode that has not joined yet (startCluster joins it).
func (m *Manager) openCluster(ctx context.Context, o cluster.Options, prom prometheus.Registerer, local cluster.ChangelogStore) (*clusterMode, error) {
	_, js := m.conns()
	reg, err := cluster.OpenRegistry(ctx, js, o, m.log)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &clusterMode{opts: o, reg: reg, prom: prom, local: local, ctx: cctx, cancel: cancel,
		synced: make(chan struct{}), streams: map[string]*clusterStream{}, created: map[string]uint64{}}
	c.view.init(m.instance)
	return c, nil
}

// startCluster registers the configured streams, announces the instance,
// and follows the members and the registry. It returns once the
// registry's current specs are applied here.
func (m *Manager) startCluster(ctx context.Context, c *clusterMode, configured []sketchd.Stream) error {
	for _, spec := range configured {
		spec.Normalize()
		if err := spec.CheckNotSetBySketchd(); err != nil {
			return fmt.Errorf("stream %q: %w", spec.Name, err)
		}
		if err := m.clusterAdmissible(spec); err != nil {
			return fmt.Errorf("stream %q: %w", spec.Name, err)
		}
		rev, err := c.reg.Create(ctx, spec)
		if err != nil && !errors.Is(err, cluster.ErrStreamExists) {
			return fmt.Errorf("register stream %q: %w", spec.Name, err)
		}
		c.markCreated(spec.Name, rev)
		if have, _, err := c.reg.Get(ctx, spec.Name); err == nil {
			if err := sameSpec(have, spec); err != nil {
				return fmt.Errorf("stream %q: the configured spec differs from the cluster's (%w); streams are immutable: delete it or rename it", spec.Name, err)
			}
		}
	}
	nc, _ := m.conns()
	ann, err := cluster.Announce(nc, c.opts.Name, m.instance)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.ann = ann
	c.mu.Unlock()
	events, err := c.reg.Watch(c.ctx, ctx)
	if err != nil {
		return err
	}
	c.wg.Go(func() { m.followMembers(c.ctx, c) })
	c.wg.Go(func() { m.followRegistry(c.ctx, c, events) })
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clusterAdmissible refuses what cluster mode cannot share: a stream that
// is not a partitioned JetStream stream, or whose panes may not fit the
// server's max_payload.
func (m *Manager) clusterAdmissible(spec sketchd.Stream) error {
	if !spec.JetStream || !spec.Partitioned() {
		return &sketchd.FieldError{Field: "partitions", Msg: "in cluster mode a stream must be a partitioned JetStream stream (jetstream: true, partitions ≥ 1): its partitions are what the instances share"}
	}
	nc, _ := m.conns()
	if err := cluster.CheckPaneFits(spec, nc.MaxPayload()); err != nil {
		return &sketchd.FieldError{Field: "aggregates", Msg: err.Error()}
	}
	return nil
}

// followRegistry applies the registry's events to this instance.
func (m *Manager) followRegistry(ctx context.Context, c *clusterMode, events <-chan cluster.SpecEvent) {
	if hold := m.holdSync.Load(); hold != nil {
		(*hold)(ctx) // tests only: see Manager.holdSync
	}
	known := map[string]bool{}
	synced := false
	for ev := range events {
		switch ev.Op {
		case cluster.SpecSynced:
			if !synced {
				synced = true
				m.warnUnregistered(ctx, known)
				close(c.synced)
			}
		case cluster.SpecAdded:
			if ev.Err != nil {
				m.log.Error("cluster registry entry does not decode", "stream", ev.Name, "err", ev.Err)
				continue
			}
			known[ev.Name] = true
			for ctx.Err() == nil {
				err := m.applySpec(ctx, c, ev.Spec, ev.Revision)
				if err == nil {
					break
				}
				m.log.Error("cluster stream failed to start; retrying", "stream", ev.Name, "err", err)
				sleepCtx(ctx, time.Second)
			}
		case cluster.SpecRemoved:
			delete(known, ev.Name)
			if err := m.removeLocal(ctx, c, ev.Name, true); err != nil {
				m.log.Error("cluster stream removal", "stream", ev.Name, "err", err)
			}
		}
	}
}

// warnUnregistered logs the local streams the cluster does not know: they
// are not run in cluster mode (bootstrapping them is a later step).
func (m *Manager) warnUnregistered(ctx context.Context, known map[string]bool) {
	infos, err := m.db.Streams(ctx)
	if err != nil {
		return
	}
	for _, in := range infos {
		if !known[in.Spec.Name] {
			m.log.Warn("local stream not in the cluster's registry: not run in cluster mode", "stream", in.Spec.Name)
		}
	}
}

// applySpec makes the registered stream run here: its local store entry
// (replaced when the stored spec differs), its changelog, its mirror and
// its controller. A stream already running at rev is left alone.
func (m *Manager) applySpec(ctx context.Context, c *clusterMode, spec sketchd.Stream, rev uint64) error {
	unlock := m.names.lock(spec.Name)
	defer unlock()
	return m.applySpecLocked(ctx, c, spec, rev)
}

func (m *Manager) applySpecLocked(ctx context.Context, c *clusterMode, spec sketchd.Stream, rev uint64) error {
	c.mu.Lock()
	cs := c.streams[spec.Name]
	c.mu.Unlock()
	if cs != nil && cs.cl.Rev == rev {
		return nil
	}
	if cs != nil {
		if err := m.removeLocalLocked(ctx, c, spec.Name, true); err != nil {
			return err
		}
	}
	began := time.Now()
	info, err := m.localStream(ctx, spec)
	if err != nil {
		return err
	}
	if _, err := m.ensureJetStream(ctx, spec); err != nil {
		return err
	}
	cs, err = m.newClusterStream(ctx, c, info, rev)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.streams[spec.Name] = cs
	c.mu.Unlock()
	cs.start()
	m.log.Info("cluster stream started", "stream", spec.Name, "revision", rev, "partitions", spec.Partitions,
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// localStream returns the store's entry for spec, creating it (or
// replacing one with another spec).
func (m *Manager) localStream(ctx context.Context, spec sketchd.Stream) (store.StreamInfo, error) {
	info, err := m.db.Stream(ctx, spec.Name)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, sketchd.ErrNotFound):
		return m.db.CreateStream(ctx, spec)
	case err != nil:
		return info, err
	}
	if sameSpec(info.Spec, spec) == nil {
		return info, nil
	}
	m.log.Warn("local stream differs from the cluster's spec: replaced", "stream", spec.Name)
	if err := m.db.DeleteStream(ctx, spec.Name); err != nil {
		return info, err
	}
	return m.db.CreateStream(ctx, spec)
}

// removeLocal stops the stream's controller (its partitions released
// with a final commit when final) and removes its local state.
func (m *Manager) removeLocal(ctx context.Context, c *clusterMode, name string, final bool) error {
	unlock := m.names.lock(name)
	defer unlock()
	return m.removeLocalLocked(ctx, c, name, final)
}

func (m *Manager) removeLocalLocked(ctx context.Context, c *clusterMode, name string, final bool) error {
	c.mu.Lock()
	cs := c.streams[name]
	delete(c.streams, name)
	c.mu.Unlock()
	if cs == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	cs.shutdown(sctx, final, releaseRemoved)
	m.deleteJetStream(sctx, cs.info.Spec, true) // this instance's durables
	if err := m.db.DeleteStream(sctx, name); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, sketchd.ErrNotFound) {
		return err
	}
	m.log.Info("cluster stream removed here", "stream", name)
	return nil
}

// clusterDelete is Delete in cluster mode: the spec leaves the registry,
// the stream stops here (the others stop it from the registry), and its
// changelog and, unless opts.KeepEvents, its JetStream stream go (the
// latter only once no instance's consumer reads it: see deleteJetStream).
func (m *Manager) clusterDelete(ctx context.Context, c *clusterMode, name string, opts sketchd.DeleteOptions) error {
	// Taken first: this instance's registry watch may remove it locally
	// before the lock below is ours.
	cs := m.clusterStreamOf(name)
	if err := c.reg.Delete(ctx, name); err != nil {
		if errors.Is(err, cluster.ErrStreamNotFound) {
			return fmt.Errorf("stream %q: %w", name, sketchd.ErrNotFound)
		}
		return err
	}
	unlock := m.names.lock(name)
	defer unlock()
	if err := m.removeLocalLocked(ctx, c, name, false); err != nil {
		return err
	}
	if cs == nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, js := m.conns()
	if err := js.DeleteStream(dctx, cs.cl.Name()); err != nil {
		m.log.Warn("delete changelog", "stream", name, "changelog", cs.cl.Name(), "err", err)
	}
	if !opts.KeepEvents {
		m.deleteJetStream(dctx, cs.info.Spec, false)
	}
	return nil
}

// clusterStreamOf returns the running cluster stream of name, if any.
func (m *Manager) clusterStreamOf(name string) *clusterStream {
	c := m.cluster.Load()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[name]
}

// clusterReady fails until every stream's mirror restored its changelog.
func (m *Manager) clusterReady() error {
	c := m.cluster.Load()
	if c == nil {
		return nil
	}
	if c.left.Load() {
		return fmt.Errorf("joining the cluster again on a new NATS connection: %w", sketchd.ErrUnavailable)
	}
	select {
	case <-c.synced:
	default:
		return fmt.Errorf("cluster registry not read yet: %w", sketchd.ErrUnavailable)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var waiting []string
	for name, cs := range c.streams {
		if !cs.mirror.Restored() {
			waiting = append(waiting, name)
		}
	}
	if len(waiting) > 0 {
		slices.Sort(waiting)
		return fmt.Errorf("restoring from the changelog: streams %v: %w", waiting, sketchd.ErrUnavailable)
	}
	return nil
}

// stopCluster releases every owned partition (a final commit each, when
// ctx allows), stops the mirrors, then leaves the cluster. It waits for a
// rejoin under way (rejoin.go), which m.ctx's end cuts short.
func (m *Manager) stopCluster(ctx context.Context) {
	m.clusterMu.Lock()
	defer m.clusterMu.Unlock()
	if c := m.cluster.Load(); c != nil {
		c.leave(ctx, true, releaseShutdown)
	}
}

// leave stops following the members and the registry, shuts every
// stream down (its partitions released with a final commit when final,
// counted under reason), then withdraws the announcement. A second call
// finds nothing left to stop.
func (c *clusterMode) leave(ctx context.Context, final bool, reason int) {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	streams := make([]*clusterStream, 0, len(c.streams))
	for _, cs := range c.streams {
		streams = append(streams, cs)
	}
	c.streams = map[string]*clusterStream{}
	ann := c.ann
	c.ann = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, cs := range streams {
		wg.Go(func() { cs.shutdown(ctx, final, reason) })
	}
	wg.Wait()
	if ann != nil {
		_ = ann.Stop()
	}
}

// markCreated notes that this instance registered name at rev (0: it
// did not).
func (c *clusterMode) markCreated(name string, rev uint64) {
	if rev == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.created[name] = rev
}

// creator reports whether this instance registered name at rev.
func (c *clusterMode) creator(name string, rev uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created[name] == rev
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// notInCluster refuses, in cluster mode, a change of a stream's spec: the
// instances would have to apply it at the same point of every partition
// (not built yet; delete and create the stream instead).
func (m *Manager) notInCluster(field string) error {
	if m.cluster.Load() == nil {
		return nil
	}
	return &sketchd.FieldError{Field: field, Msg: "a stream's spec cannot change in cluster mode yet: delete the stream and create it again"}
}
