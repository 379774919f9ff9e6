package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
)

// clusterCreate is Create in cluster mode: the spec is registered and
// stored here; every instance, this one included, starts it from the
// registry's event (its changelog, mirror and controller: applySpec),
// so the answer's state is "starting" until then.
//
// Of several instances creating one name at once exactly one registers
// it; the others answer sketchd.ErrExists (409), identical specs or not.
// Before registering, a creator only creates the name's JetStream stream
// when it is absent (bindJetStream) and never updates one, so that the
// stream ends with the registered spec's subject and max age whatever
// the order of the creators:
//
//   - An update by a creator that then lost would give the stream the
//     loser's configuration, after the winner's. And an update the server
//     gets while another creator's create of the stream is still in
//     flight is answered to neither: both time out (on a 3-node cluster,
//     TestClusterConcurrentCreates saw no create succeed in about half of
//     its rounds when every creator updated).
//   - The update an existing stream may need (a name created again after
//     a delete with keep_events, with another max age) is made once the
//     spec is registered, by every instance's applySpec of it: this
//     instance's too, whose registry event waits for the name's lock held
//     here. Every write to the stream after a registration is then one of
//     the registered spec, by applySpec; a creator's only write, a create
//     of an absent stream, lands before the winner's registration (the
//     winner's bind found or made the stream first), unless the stream
//     was deleted meanwhile, which a delete does after unregistering the
//     name: the next registration's applySpecs conform it.
//   - What the server could refuse of that update is checked before
//     registering, by bindJetStream (retention, the partition transform,
//     which already refuses another subject: every cluster stream is
//     partitioned); a max age and its duplicate window (never longer, see
//     streamConfig) it takes.
//
// A bind that fails (another creator's stream has another subject, or
// the server does not answer while it elects its leader) is a lost race
// when the name is registered by then or shortly after (registeredSoon):
// 409.
func (m *Manager) clusterCreate(ctx context.Context, c *clusterMode, spec sketchd.Stream) (sketchd.StreamStatus, error) {
	if _, _, err := c.reg.Get(ctx, spec.Name); err == nil {
		return sketchd.StreamStatus{}, fmt.Errorf("stream %q: %w", spec.Name, sketchd.ErrExists)
	}
	unlock := m.names.lock(spec.Name)
	defer unlock()
	if err := m.clusterAdmissible(spec); err != nil {
		return sketchd.StreamStatus{}, err
	}
	if err := m.admit(ctx, spec); err != nil {
		return sketchd.StreamStatus{}, err
	}
	if _, _, err := m.bindJetStream(ctx, spec); err != nil {
		if c.registeredSoon(ctx, spec.Name) {
			return sketchd.StreamStatus{}, fmt.Errorf("stream %q: %w (its JetStream stream, made for the winner: %v)", spec.Name, sketchd.ErrExists, err)
		}
		return sketchd.StreamStatus{}, err
	}
	rev, err := c.reg.Create(ctx, spec)
	if errors.Is(err, cluster.ErrStreamExists) {
		return sketchd.StreamStatus{}, fmt.Errorf("stream %q: %w", spec.Name, sketchd.ErrExists)
	} else if err != nil {
		return sketchd.StreamStatus{}, err
	}
	c.markCreated(spec.Name, rev)
	info, err := m.localStream(ctx, spec)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	return m.statusOf(ctx, info), nil
}

// registeredSoon reports whether name is registered now or within about
// 0.6 s: a bind that fails because of another instance's create of the
// name precedes that instance's registration by its bind's answer and
// one KV write (milliseconds). A refusal with no such race answers that
// much later.
func (c *clusterMode) registeredSoon(ctx context.Context, name string) bool {
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		if _, _, err := c.reg.Get(ctx, name); err == nil {
			return true
		}
		if wait > 320*time.Millisecond || ctx.Err() != nil {
			return false
		}
		sleepCtx(ctx, wait)
	}
}
