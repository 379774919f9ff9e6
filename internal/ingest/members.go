package ingest

// The live members of the cluster as this instance sees them: every
// DiscoveryInterval a micro ping gathers the instances that answer; an
// instance counts as a member until it has not answered for
// FailoverTimeout (so one lost ping does not move partitions), and this
// instance always counts. Controllers (owner.go) wait for the first
// round (until then the view is this instance alone, and a joining
// instance would claim partitions that live owners hold: each such claim
// fences its owner and costs a replay) and then for changes.

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sketchd/sketchd/internal/cluster"
)

type memberView struct {
	mu      sync.Mutex
	self    string
	ids     []string      // sorted, self included
	changed chan struct{} // closed at the next change

	discovered chan struct{} // closed after the first discovery round
	firstOnce  sync.Once
}

func (v *memberView) init(self string) {
	v.self, v.ids, v.changed, v.discovered = self, []string{self}, make(chan struct{}), make(chan struct{})
}

// firstRound is closed once the first discovery round has set the view
// (whether or not it reached anyone).
func (v *memberView) firstRound() <-chan struct{} { return v.discovered }

// get returns the current view and a channel closed when it changes.
func (v *memberView) get() ([]string, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ids, v.changed
}

// set replaces the view when it differs.
func (v *memberView) set(ids []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if slices.Equal(ids, v.ids) {
		return
	}
	v.ids = ids
	close(v.changed)
	v.changed = make(chan struct{})
}

// followMembers pings the cluster until ctx is done.
func (m *Manager) followMembers(ctx context.Context, c *clusterMode) {
	seen := map[string]time.Time{}
	t := time.NewTicker(c.opts.DiscoveryInterval)
	defer t.Stop()
	for {
		nc, _ := m.conns()
		ms, err := cluster.Discover(ctx, nc, c.opts.Name, c.opts.DiscoveryGather)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err != nil {
			m.log.Warn("cluster discovery failed", "err", err)
		}
		for _, mb := range ms {
			seen[mb.Instance] = now
		}
		seen[m.instance] = now
		ids := make([]string, 0, len(seen))
		for id, at := range seen {
			if now.Sub(at) < c.opts.FailoverTimeout {
				ids = append(ids, id)
			} else {
				delete(seen, id)
			}
		}
		slices.Sort(ids)
		c.view.set(ids)
		c.view.firstOnce.Do(func() { close(c.view.discovered) })
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
