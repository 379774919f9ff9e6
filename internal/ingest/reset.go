package ingest

// Positioning a durable consumer at a sequence. Servers from 2.14 on
// (ADR-60) reset a consumer in place ($JS.API.CONSUMER.RESET): one request,
// the consumer keeps its name, its config and (in a cluster) its pin.
// Older servers do not answer that subject at all, so the first reset of a
// Manager is a probe with a short timeout; after a timeout, when the
// connection is up and its server says it is older than 2.14, the Manager
// falls back for good to what every server supports: delete the durable
// and create it again at the sequence (a timeout for another reason, such
// as an outage during the probe, falls back for that reset only). A reset
// the server refuses (a sequence below the consumer's start, a consumer
// that vanished, a config that changed since it was created) falls back
// to delete + create too.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// resetSupport is what the Manager knows of the server's consumer reset.
type resetSupport int32

const (
	resetUnknown     resetSupport = iota // not probed yet
	resetSupported                       // the server answered a reset
	resetUnsupported                     // the probe timed out: delete + create
)

// resetTimeout bounds one reset request: the probe's wait for an answer
// that never comes from a server before 2.14, and later a reset that a
// vanished consumer (nobody answers for it) would leave hanging.
const resetTimeout = 2 * time.Second

type resetState struct {
	support  atomic.Int32 // resetSupport
	inPlace  atomic.Uint64
	recreate atomic.Uint64
}

func (s *resetState) get() resetSupport { return resetSupport(s.support.Load()) }

// positionConsumer makes the durable of cfg deliver from start on: a reset
// in place when the server supports it and the durable exists with the same
// config, delete + create otherwise.
func (r *runner) positionConsumer(ctx context.Context, cfg jetstream.ConsumerConfig, start uint64) (jetstream.Consumer, error) {
	rs := &r.m.reset
	if rs.get() != resetUnsupported {
		cons, err := r.resetInPlace(ctx, cfg, start)
		if err == nil && cons != nil {
			rs.inPlace.Add(1)
			return cons, nil
		}
		if err != nil {
			r.log.Info("JetStream consumer not reset in place; deleting and creating it", "durable", cfg.Durable, "start_seq", start, "err", err)
		}
	}
	s := r.consumer.jsStream
	if err := s.DeleteConsumer(ctx, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("JetStream consumer: reset to sequence %d: %w", start, err)
	}
	cons, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("JetStream consumer: %w", err)
	}
	rs.recreate.Add(1)
	return cons, nil
}

// resetInPlace resets the existing durable of cfg to start. It returns a
// nil consumer and no error when the durable does not exist (create it),
// and an error when the reset failed or does not apply.
func (r *runner) resetInPlace(ctx context.Context, cfg jetstream.ConsumerConfig, start uint64) (jetstream.Consumer, error) {
	s := r.consumer.jsStream
	cons, err := s.Consumer(ctx, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if have := cons.CachedInfo().Config; !sameConsumer(have, cfg) {
		return nil, errors.New("its config differs from this version's")
	}
	rs := &r.m.reset
	probing := rs.get() == resetUnknown
	rctx, cancel := context.WithTimeout(ctx, resetTimeout)
	defer cancel()
	_, err = s.ResetConsumerToSequence(rctx, cfg.Durable, start)
	switch {
	case err == nil:
		if probing && rs.support.CompareAndSwap(int32(resetUnknown), int32(resetSupported)) {
			r.log.Info("the NATS server resets consumers in place")
		}
		return cons, nil
	case probing && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && r.probeConclusive():
		if rs.support.CompareAndSwap(int32(resetUnknown), int32(resetUnsupported)) {
			r.log.Info("the NATS server does not answer consumer resets (before 2.14): consumers are deleted and created instead")
		}
	}
	return nil, err
}

// probeConclusive reports whether a probe that got no answer shows a
// server before 2.14: the connection is up and its server says it is
// older. A probe cut by an outage (the server restarting, the network
// down: no answer from any server) or one that a loaded 2.14+ server was
// too slow to answer concludes nothing, and the next reset probes again;
// concluding would give up resets in place for the Manager's life.
func (r *runner) probeConclusive() bool {
	if !r.nc.IsConnected() {
		return false
	}
	major, minor, ok := serverVersion(r.nc.ConnectedServerVersion())
	return !ok || major < 2 || (major == 2 && minor < 14)
}

// serverVersion parses the major and minor of a server version such as
// "2.15.2" or "2.14.0-beta.1".
func serverVersion(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.SplitN(parts[1], "-", 2)[0])
	return major, minor, err1 == nil && err2 == nil
}

// sameConsumer reports whether an existing durable was made with the
// settings sketchd would create it with now (the start position aside,
// which the reset sets).
func sameConsumer(have, want jetstream.ConsumerConfig) bool {
	return have.FilterSubject == want.FilterSubject &&
		len(have.FilterSubjects) == 0 &&
		have.AckPolicy == want.AckPolicy &&
		have.AckWait == want.AckWait &&
		have.MaxAckPending == want.MaxAckPending &&
		have.MaxDeliver == want.MaxDeliver
}
