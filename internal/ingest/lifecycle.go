package ingest

// The lifecycle of one stream through the API: Create and Delete (and
// Alter, alter.go) run under the stream name's lock (names.go), so two of
// them never interleave for one name; a retried start and a restart on a
// new connection take it too.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// Create validates, persists and starts a new stream. Before anything is
// stored it checks what the spec touches outside itself: the instance's
// limits, the subjects of the other streams (no stream may read what
// another publishes), and the JetStream stream, which it creates or
// updates now so that the server's refusal is the caller's 400, not a
// stream that stays failed.
func (m *Manager) Create(ctx context.Context, spec sketchd.Stream) (sketchd.StreamStatus, error) {
	spec.Normalize()
	if err := spec.ValidateNew(); err != nil {
		return sketchd.StreamStatus{}, err
	}
	if c := m.cluster.Load(); c != nil {
		return m.clusterCreate(ctx, c, spec) // cluster.go
	}
	unlock := m.names.lock(spec.Name)
	defer unlock()
	if _, err := m.db.Stream(ctx, spec.Name); err == nil {
		return sketchd.StreamStatus{}, fmt.Errorf("stream %q: %w", spec.Name, sketchd.ErrExists)
	}
	if err := m.admit(ctx, spec); err != nil {
		return sketchd.StreamStatus{}, err
	}
	if spec.JetStream {
		if _, err := m.ensureJetStream(ctx, spec); err != nil {
			return sketchd.StreamStatus{}, err
		}
	}
	info, err := m.db.CreateStream(ctx, spec)
	if err != nil {
		return sketchd.StreamStatus{}, err
	}
	if err := m.startRunner(ctx, info); err != nil {
		m.log.Error("stream failed to start", "stream", spec.Name, "err", err)
	}
	return m.statusOf(ctx, info), nil
}

// admit checks the limits and the subjects against the other streams.
func (m *Manager) admit(ctx context.Context, spec sketchd.Stream) error {
	if n := len(spec.Aggregates); n > m.opts.MaxAggregates {
		return &sketchd.LimitError{Limit: "max_aggregates", Max: m.opts.MaxAggregates, Got: n}
	}
	infos, err := m.db.Streams(ctx)
	if err != nil {
		return err
	}
	if len(infos) >= m.opts.MaxStreams {
		return &sketchd.LimitError{Limit: "max_streams", Max: m.opts.MaxStreams, Got: len(infos) + 1}
	}
	others := make([]sketchd.Stream, len(infos))
	for i, in := range infos {
		others[i] = in.Spec
	}
	var errs []error
	for _, fe := range spec.SubjectConflicts(others) {
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// Delete stops a stream's runner completely, then removes its JetStream
// consumer, the JetStream stream sketchd created for it (unless
// opts.KeepEvents, or sketchd did not create it), and its panes,
// checkpoint and spec. The name can be created again once it returns.
func (m *Manager) Delete(ctx context.Context, name string, opts sketchd.DeleteOptions) error {
	if c := m.cluster.Load(); c != nil {
		return m.clusterDelete(ctx, c, name, opts) // cluster.go
	}
	unlock := m.names.lock(name)
	defer unlock()
	info, err := m.db.Stream(ctx, name)
	if err != nil {
		return err
	}
	// What was started is cleaned up even when the client goes away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	m.stopBackfill(name)
	m.mu.Lock()
	r := m.runners[name]
	delete(m.runners, name)
	delete(m.failed, name)
	m.mu.Unlock()
	if r != nil {
		if err := r.stop(ctx, false); err != nil {
			m.log.Warn("stop stream", "stream", name, "err", err)
		}
	}
	if info.Spec.JetStream {
		m.deleteJetStream(ctx, info.Spec, opts.KeepEvents)
	}
	if err := m.db.DeleteStream(ctx, name); err != nil {
		// Still registered: run it again rather than leave it stopped.
		_ = m.startRunner(ctx, info)
		return err
	}
	m.log.Info("stream deleted", "stream", name, "keep_events", opts.KeepEvents)
	return nil
}

// deleteJetStream removes the stream's durable consumers and, unless keep,
// the JetStream stream when sketchd created it for this stream and no
// other consumer (another instance's) reads it. A JetStream stream that
// stays gets idle consumers created and deleted on it, which free what
// the server still holds of the deleted durables (consumerslot.go).
func (m *Manager) deleteJetStream(ctx context.Context, spec sketchd.Stream, keep bool) {
	_, js := m.conns()
	deleted := m.deleteDurables(ctx, js, spec)
	if !keep && m.deleteOwnJetStream(ctx, js, spec) {
		return
	}
	if deleted > 0 {
		m.fillConsumerSlots(ctx, js, spec.JetStreamStream, deleted)
	}
}

// deleteDurables deletes the stream's durable consumers and returns how
// many it deleted.
func (m *Manager) deleteDurables(ctx context.Context, js jetstream.JetStream, spec sketchd.Stream) int {
	deleted := 0
	for _, durable := range m.durables(spec) {
		ok, err := deleteConsumer(ctx, m.log.With("stream", spec.Name, "durable", durable), &m.unansweredDeletes, js, spec.JetStreamStream, durable)
		if ok {
			deleted++
		} else if err != nil {
			m.log.Warn("delete JetStream consumer", "stream", spec.Name, "durable", durable, "err", err)
		}
	}
	return deleted
}

// consumerDeleteAttempt bounds one attempt of deleteConsumer.
const consumerDeleteAttempt = 3 * time.Second

// deleteConsumer deletes the durable of stream and reports whether it
// went (ok), asking again while the server leaves the request unanswered
// until ctx ends: on a NATS cluster a delete that arrives while the
// consumer's replicas are still being set up is sometimes answered by
// no one, and a later one is (TestClusterCreateKeptJetStream: 2 of 3
// race runs waited out the whole 30 s on one unanswered delete). A
// durable not found is not an error; after an unanswered attempt it is
// one that attempt deleted. Each unanswered attempt is logged and counted
// in unanswered.
func deleteConsumer(ctx context.Context, log *slog.Logger, unanswered *atomic.Uint64, js jetstream.JetStream, stream, durable string) (ok bool, err error) {
	asked := false
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, consumerDeleteAttempt)
		err = js.DeleteConsumer(actx, stream, durable)
		cancel()
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			return asked, nil
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return false, nil
		case ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
			asked = true
			unanswered.Add(1)
			log.Info("JetStream consumer delete unanswered; asking again", "attempt", attempt, "after", consumerDeleteAttempt)
		default:
			return false, err
		}
	}
}

// deleteOwnJetStream deletes the JetStream stream when sketchd created it
// for this stream and no other consumer reads it, and reports whether it
// is gone.
func (m *Manager) deleteOwnJetStream(ctx context.Context, js jetstream.JetStream, spec sketchd.Stream) bool {
	s, err := js.Stream(ctx, spec.JetStreamStream)
	if err != nil {
		return errors.Is(err, jetstream.ErrStreamNotFound)
	}
	if s.CachedInfo().Config.Description != ownerDescription(spec.Name) {
		return false // not ours: it may hold other streams' events
	}
	if n, err := durableConsumers(ctx, s); err != nil || n > 0 {
		// Another instance's stream of this name reads it too (or the
		// server did not say).
		m.log.Info("JetStream stream kept: other consumers read it", "stream", spec.Name, "jetstream_stream", spec.JetStreamStream, "consumers", n, "err", err)
		return false
	}
	if err := js.DeleteStream(ctx, spec.JetStreamStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		m.log.Warn("delete JetStream stream", "stream", spec.Name, "jetstream_stream", spec.JetStreamStream, "err", err)
		return false
	}
	m.log.Info("deleted JetStream stream", "stream", spec.Name, "jetstream_stream", spec.JetStreamStream)
	return true
}

// durableConsumers counts the durable consumers of s: the streams of
// sketchd instances read through durables (one per partition); an
// ephemeral one is a reader that goes by itself, such as the ordered
// consumer a backfill leaves for its inactive threshold (5 minutes).
// Counted with those, a DELETE within 5 minutes of a backfill kept the
// JetStream stream, and re-creating the name ingested its old events again.
func durableConsumers(ctx context.Context, s jetstream.Stream) (int, error) {
	n := 0
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci.Config.Durable != "" {
			n++
		}
	}
	return n, l.Err()
}

// ownerDescription is the description of a JetStream stream sketchd
// created for the stream name: it marks the JetStream streams sketchd may
// update and delete.
func ownerDescription(name string) string { return "sketchd stream " + name }

// ensureJetStream returns the spec's JetStream stream, creating it when
// absent. One sketchd created for this stream name gets the spec's subject
// and max age (a re-created name may read another subject); one it did
// not create must already capture the subject. What the server refuses
// comes back as a *sketchd.FieldError on jetstream_stream or
// jetstream_max_age; what it cannot answer now, as sketchd.ErrUnavailable.
func (m *Manager) ensureJetStream(ctx context.Context, spec sketchd.Stream) (jetstream.Stream, error) {
	s, own, err := m.bindJetStream(ctx, spec)
	if err != nil || !own {
		return s, err
	}
	return m.conformJetStream(ctx, spec, s)
}

// bindJetStream returns the spec's JetStream stream, creating it when
// absent, and whether it is one sketchd created for this stream name
// earlier (conformJetStream may update it). It checks what the spec
// needs of a stream that exists (retention, partition transform, a
// foreign stream capturing the subject) and writes nothing to it.
func (m *Manager) bindJetStream(ctx context.Context, spec sketchd.Stream) (s jetstream.Stream, own bool, err error) {
	_, js := m.conns()
	cfg := m.jetStreamConfig(spec)
	s, created, err := lookUpOrCreate(ctx, js, cfg)
	if created {
		m.log.Info("created JetStream stream", "jetstream_stream", cfg.Name, "subject", spec.Subject)
		return s, false, nil
	}
	if err != nil {
		return nil, false, serverRefusal(err, "jetstream_stream")
	}
	have := s.CachedInfo().Config
	if err := checkRetention(have); err != nil {
		return nil, false, err // retention.go
	}
	if err := checkTransform(spec, have); err != nil {
		return nil, false, err // partitions.go
	}
	if have.Description == cfg.Description {
		return s, true, nil
	}
	for _, subj := range have.Subjects {
		if sketchd.SubjectCovers(subj, spec.Subject) {
			return s, false, nil
		}
	}
	return nil, false, &sketchd.FieldError{Field: "jetstream_stream", Msg: fmt.Sprintf(
		"JetStream stream %q exists, was not created by sketchd for this stream, and captures %q, not subject %q: add the subject to it, or name another jetstream_stream",
		cfg.Name, have.Subjects, spec.Subject)}
}

// inUseLookUps bounds lookUpOrCreate's attempts.
const inUseLookUps = 8

// lookUpOrCreate returns the JetStream stream cfg names, creating it with
// cfg when absent (created). A create the server refuses because the name
// is in use was raced by another one (another instance creating this
// stream name) of another configuration: the stream is looked up again,
// a few times as the server may not know it yet (its leader is being
// elected), then the refusal is returned. A create whose store the server
// could not make (storeRaced) is tried again the same way.
func lookUpOrCreate(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (s jetstream.Stream, created bool, err error) {
	for attempt := 1; ; attempt++ {
		s, err = js.Stream(ctx, cfg.Name)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return s, false, err
		}
		s, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return s, true, nil
		}
		if (!errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && !storeRaced(err)) || attempt == inUseLookUps {
			return nil, false, err
		}
		sleepCtx(ctx, time.Duration(attempt)*20*time.Millisecond)
	}
}

// storeRaced reports nats-server's refusal to make a new stream's store
// (API error 10049, "error creating store for stream"): a stream of the
// same name deleted just before may still have its files being removed
// (a delete and re-create of one sketchd stream got it, in a test under
// load: TestRecreateAndDelete), so the create is worth another try.
func storeRaced(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStreamCreate && strings.Contains(apiErr.Description, "error creating store")
}

// jsErrStreamCreate is nats-server's error code for a stream create that
// failed (JSStreamCreateErrF; nats.go names no constant for it).
const jsErrStreamCreate jetstream.ErrorCode = 10049

// conformJetStream gives s, a JetStream stream sketchd created for this
// stream name, the spec's subject, max age and duplicate window when it
// has others.
func (m *Manager) conformJetStream(ctx context.Context, spec sketchd.Stream, s jetstream.Stream) (jetstream.Stream, error) {
	have, want := s.CachedInfo().Config, m.jetStreamConfig(spec)
	if sameJetStreamLimits(have, want) {
		return s, nil
	}
	upd := have
	upd.Subjects, upd.MaxAge, upd.Duplicates = want.Subjects, want.MaxAge, want.Duplicates
	_, js := m.conns()
	s, err := js.UpdateStream(ctx, upd)
	if err == nil {
		m.log.Info("updated JetStream stream", "jetstream_stream", want.Name, "subjects_were", have.Subjects, "subject", spec.Subject,
			"max_age_was", have.MaxAge, "max_age", want.MaxAge)
	}
	return s, serverRefusal(err, "jetstream_stream")
}

// sameJetStreamLimits reports whether have already has what
// conformJetStream sets of want: its subjects and max age (the duplicate
// window follows from the max age).
func sameJetStreamLimits(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge
}

// jetStreamConfig is streamConfig(spec) with, in cluster mode, the
// cluster's replicas.
func (m *Manager) jetStreamConfig(spec sketchd.Stream) jetstream.StreamConfig {
	cfg := streamConfig(spec)
	if c := m.cluster.Load(); c != nil {
		cfg.Replicas = c.opts.Replicas
	}
	return cfg
}

// streamConfig is the JetStream stream sketchd creates for spec. Its
// duplicate window is 2 minutes, or MaxAge when shorter (the server
// refuses a window longer than the age limit).
func streamConfig(spec sketchd.Stream) jetstream.StreamConfig {
	dup := 2 * time.Minute
	if a := spec.JetStreamMaxAge.Std(); a > 0 && a < dup {
		dup = a
	}
	return jetstream.StreamConfig{
		Name:             spec.JetStreamStream,
		Description:      ownerDescription(spec.Name),
		Subjects:         []string{spec.Subject},
		Storage:          jetstream.FileStorage,
		Retention:        jetstream.LimitsPolicy,
		MaxAge:           spec.JetStreamMaxAge.Std(),
		Duplicates:       dup,
		SubjectTransform: partitionTransform(spec), // partitions.go
	}
}

// serverRefusal maps a JetStream API error: a request the server refuses
// (4xx) becomes a *sketchd.FieldError on field with the server's words;
// anything else (timeouts, no responders) sketchd.ErrUnavailable.
func serverRefusal(err error, field string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, nats.ErrNoResponders) {
		return &sketchd.FieldError{Field: "jetstream", Msg: "the NATS server has no JetStream (for this account): enable it, or set jetstream: false to read the subject with core NATS (at most once)"}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500 {
		return &sketchd.FieldError{Field: field, Msg: "the NATS server refuses it: " + apiErr.Description}
	}
	return fmt.Errorf("JetStream: %w: %w", sketchd.ErrUnavailable, err)
}

// rebind moves every stream to nc, a connection that replaced a closed
// one: each runner, whose subscription died with the old connection, is
// stopped (nothing more is acked; JetStream redelivers from the
// checkpoint) and started again on nc; in cluster mode the instance
// leaves the cluster and joins it again on nc (rejoin.go).
//
// Two rebinds can overlap (the redial loop of a connection that closed
// while the previous rebind ran delivers the next one meanwhile): only the
// connection that is still the current one (ConnState.Current) is taken,
// checked and written under connMu, so the newest rebind writes m.nc last
// and an older one returns (the newer one moves every stream).
func (m *Manager) rebind(nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		m.log.Error("JetStream on the new NATS connection", "err", err)
		return
	}
	m.connMu.Lock()
	if m.conn.Current() != nc {
		m.connMu.Unlock()
		return // replaced already: its rebind follows
	}
	m.nc, m.js = nc, js
	m.connMu.Unlock()
	m.mu.Lock()
	names := make([]string, 0, len(m.runners))
	for n := range m.runners {
		names = append(names, n)
	}
	m.mu.Unlock()
	for _, n := range names {
		m.restart(n)
	}
	m.log.Info("streams restarted on the new NATS connection", "streams", len(names))
	m.rejoinCluster(nc)
}

// restart stops the runner of name and starts it again from its
// checkpoint on the current connection.
func (m *Manager) restart(name string) {
	unlock := m.names.lock(name)
	defer unlock()
	m.mu.Lock()
	r := m.runners[name]
	if m.stopped || r == nil {
		m.mu.Unlock()
		return
	}
	delete(m.runners, name)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
	_ = r.stop(ctx, false)
	cancel()
	info, err := m.db.Stream(m.ctx, name)
	if err != nil || info.ID != r.info.ID {
		return
	}
	sctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	if err := m.startRunner(sctx, info); err != nil {
		m.log.Warn("stream restart failed; retrying", "stream", name, "err", err)
	}
}
