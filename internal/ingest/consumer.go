package ingest

// The consumer: the NATS side of a stream. It subscribes (core NATS) or
// creates the JetStream stream and a durable consumer at the checkpoint,
// hands each delivered message to the intake in stream order and once, and
// at stop drains the subscription or consume context.
//
// Goroutines:
//
//   - runConsumer, one per stream: for JetStream it recreates the consumer
//     when deliveries were lost (a reset: after a reconnection, a gap in the
//     delivery sequence, or the consumer vanishing) and refreshes the
//     consumer's info for the status; for both kinds it drains the source
//     when the stream stops and then closes the intake queue.
//   - the NATS client's delivery goroutine, which runs deliver (JetStream)
//     or the core subscription's handler; deliver and a reset's start are
//     serialized by deliverMu.
//
// Fields (consumerState): sub; jsStream, cons, cc and reconnected belong to
// runConsumer once it starts (subscribe sets them before); epoch, lastDseq
// and nextSeq to deliver under deliverMu (resets read nextSeq under it);
// resetting and resetReq hand a reset request from any goroutine to
// runConsumer; resets, redelivered, gapped, numPending and ackFloor are
// counters for the status and metrics.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

type consumerState struct {
	sub *nats.Subscription // core NATS; nil for JetStream

	jsStream    jetstream.Stream
	cons        jetstream.Consumer
	cc          jetstream.ConsumeContext
	reconnected chan nats.Status // CONNECTED events of the connection

	// deliverMu serializes the consume callbacks (of the current and of a
	// superseded consume context) with a reset's start. epoch identifies
	// the current consume context: a callback of an older one drops its
	// message.
	deliverMu sync.Mutex
	epoch     atomic.Uint64
	lastDseq  uint64        // consumer sequence of the last delivery (deliverMu)
	nextSeq   atomic.Uint64 // next JetStream sequence expected

	resetting atomic.Bool   // a reset is requested or running: at most one
	resetReq  chan struct{} // capacity 1: asks runConsumer for a reset

	resets      atomic.Uint64 // consumer resets (deliveries lost in transit)
	redelivered atomic.Uint64 // redeliveries of messages already handed over
	gapped      atomic.Uint64 // messages skipped by a sequence gap
	jumps       atomic.Uint64 // jumps over messages still in the stream (resets)
	numPending  atomic.Uint64 // the consumer's pending count: of the last delivery or info refresh
	ackFloor    atomic.Uint64 // the consumer's ack floor, as last refreshed

	first firstSeqCache // the JetStream stream's first sequence (gap.go)
}

func (c *consumerState) init() { c.resetReq = make(chan struct{}, 1) }

// consumerName is the stream's durable consumer: unique per instance
// (sketchd_<instance>_<stream>, the instance id kept in the store), so two
// instances on one NATS never touch each other's consumers.
func (m *Manager) consumerName(stream string) string {
	return "sketchd_" + m.instance + "_" + stream
}

// durable is the runner's durable consumer: the stream's, with the
// partition as a suffix (_p00, _p01, …) on a partitioned stream.
func (r *runner) durable() string {
	return r.m.durables(r.spec)[max(r.part, 0)]
}

// filterSubject is what the runner's consumer reads of the JetStream
// stream: the subject, or its partition's share of it.
func (r *runner) filterSubject() string {
	if r.part < 0 {
		return r.spec.Subject
	}
	return r.spec.PartitionFilter(r.part)
}

// legacyConsumerName is the durable of releases before instance ids.
func legacyConsumerName(stream string) string { return "sketchd_" + stream }

// subscribe starts delivery: a core subscription, or the JetStream stream
// (created when missing) and a consumer at the checkpoint.
func (r *runner) subscribe(ctx context.Context) error {
	if !r.spec.JetStream {
		return r.subscribeCore(ctx)
	}
	return r.subscribeJetStream(ctx)
}

func (r *runner) subscribeCore(ctx context.Context) error {
	sub, err := r.nc.Subscribe(r.spec.Subject, func(m *nats.Msg) {
		r.send(inMsg{data: m.Data, subject: m.Subject})
	})
	if err != nil {
		return fmt.Errorf("subscribe %q: %w", r.spec.Subject, err)
	}
	if err := sub.SetPendingLimits(r.m.opts.CorePendingMsgs, r.m.opts.CorePendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("pending limits: %w", err)
	}
	r.consumer.sub = sub
	// Core NATS delivers only to subscriptions the server knows: make sure
	// it knows this one when Start returns (a round trip), so that events
	// published after Start are not lost to the race. (While disconnected,
	// the client subscribes again on reconnect.)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.nc.FlushWithContext(fctx); err != nil {
		r.log.Warn("core subscription not confirmed by the server yet", "err", err)
	}
	return nil
}

func (r *runner) subscribeJetStream(ctx context.Context) error {
	s, err := r.jetStreamStream(ctx)
	if err != nil {
		return fmt.Errorf("JetStream stream %q: %w", r.spec.JetStreamStream, err)
	}
	// The checkpoint in the store, not the consumer's ack state, says
	// where to resume. A durable consumer would first deliver new messages
	// and redeliver the ones a crashed process left unacked only after
	// AckWait, out of order; so the consumer is recreated at the
	// checkpoint, and delivery restarts in sequence order from there.
	r.consumer.jsStream = s
	start := sketchd.PositionSeq(r.committer.last.Position) + 1
	r.consumer.nextSeq.Store(start)
	if err := r.startConsumer(ctx, start); err != nil {
		return err
	}
	r.consumer.reconnected = r.nc.StatusChanged(nats.CONNECTED)
	// The durable of releases before instance ids: the new one replaces it.
	if r.part > 0 {
		return nil
	}
	if err := s.DeleteConsumer(ctx, legacyConsumerName(r.spec.Name)); err == nil {
		r.log.Info("deleted the legacy durable consumer", "durable", legacyConsumerName(r.spec.Name))
	}
	return nil
}

// jetStreamStream returns the stream's JetStream stream, creating it when
// it does not exist (see Manager.ensureJetStream).
func (r *runner) jetStreamStream(ctx context.Context) (jetstream.Stream, error) {
	return r.m.ensureJetStream(ctx, r.spec)
}

// startConsumer resets (or recreates) the durable consumer so that it
// delivers the stream from sequence start on, in order, and starts
// consuming it.
func (r *runner) startConsumer(ctx context.Context, start uint64) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       r.durable(),
		Description:   "sketchd stream " + r.spec.Name,
		FilterSubject: r.filterSubject(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       r.m.opts.AckWait,
		MaxAckPending: r.m.opts.MaxAckPending,
		MaxDeliver:    -1,
	}
	if start > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start
	}
	cons, err := r.positionConsumer(ctx, cfg, start) // reset.go
	if err != nil {
		return err
	}
	if r.own != nil {
		waitConsumerLeader(ctx, cons) // owner.go
	}
	if f := r.m.opts.afterPosition; f != nil {
		f(cfg.Durable, start)
	}
	c := &r.consumer
	c.deliverMu.Lock()
	epoch := c.epoch.Add(1)
	c.lastDseq = 0
	c.deliverMu.Unlock()
	cc, err := cons.Consume(func(m jetstream.Msg) { r.deliver(epoch, m) },
		jetstream.PullMaxMessages(r.m.opts.PullMaxMessages),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				r.log.Warn("JetStream consumer lost; recreating it", "err", err)
				r.requestReset(epoch)
				return
			}
			r.log.Warn("JetStream consume", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("JetStream consume: %w", err)
	}
	c.cons, c.cc = cons, cc
	return nil
}

// deliver is the consume callback of the consume context of epoch. It
// hands the messages to the intake strictly in stream order, each once:
//
//   - a redelivery of a message already handed over (AckWait expired
//     before its commit) is dropped: the aggregator holds it already;
//   - a gap in the consumer's delivery sequence means the server delivered
//     messages that never arrived (lost in transit when the connection or
//     the server went down). The server redelivers them only after
//     AckWait, after newer ones, and a newer position would make the
//     aggregator ignore them for good: so the message is dropped and the
//     consumer is recreated at the first sequence not yet handed over;
//   - a jump in the stream sequence over messages of the consumer's
//     filter that the stream still holds (a consumer positioned past its
//     start) is handled the same way; a jump over other subjects, or over
//     messages the stream's limits removed (counted), is accepted (gap.go).
func (r *runner) deliver(epoch uint64, m jetstream.Msg) {
	c := &r.consumer
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if c.epoch.Load() != epoch {
		return // a superseded consume context
	}
	md, err := ackSeqsOf(m.Reply())
	if err != nil {
		r.log.Error("JetStream message without metadata", "err", err, "reply", m.Reply())
		return
	}
	if dseq := md.consumer; dseq != c.lastDseq+1 {
		r.log.Warn("JetStream deliveries lost in transit; recreating the consumer at the first sequence not received",
			"expected_delivery", c.lastDseq+1, "delivery", dseq, "next_seq", c.nextSeq.Load())
		r.requestResetLocked(epoch)
		return
	}
	c.lastDseq = md.consumer
	seq := md.stream
	want := c.nextSeq.Load()
	if seq < want {
		c.redelivered.Add(1)
		return
	}
	if seq > want && md.delivered == 1 && !r.acceptJump(want, seq, md.consumer) {
		r.requestResetLocked(epoch) // gap.go: messages still in the stream were skipped
		return
	}
	c.nextSeq.Store(seq + 1)
	c.numPending.Store(md.pending)
	r.send(inMsg{data: m.Data(), subject: r.spec.UntransformedSubject(m.Subject()), seq: seq, js: m, epoch: epoch})
}

// requestReset asks for a consumer reset unless one is pending or running,
// and makes the consume context of epoch stale at once.
func (r *runner) requestReset(epoch uint64) {
	c := &r.consumer
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if c.epoch.Load() == epoch {
		r.requestResetLocked(epoch)
	}
}

// requestResetLocked is requestReset with deliverMu held. It never blocks:
// resetting admits one request at a time, and resetReq has room for it.
func (r *runner) requestResetLocked(epoch uint64) {
	c := &r.consumer
	if r.life.run.Err() != nil {
		// Stopping: the message is dropped and redelivered to the next
		// run, which restarts at its checkpoint.
		c.epoch.Add(1)
		return
	}
	if !c.resetting.CompareAndSwap(false, true) {
		return
	}
	c.epoch.Add(1)
	c.resets.Add(1)
	c.resetReq <- struct{}{}
}

// runConsumer is the consumer's goroutine. Until the stream stops it
// watches the JetStream consumer; then it drains the source and closes the
// intake queue, so that the intake ends once it has processed everything
// delivered.
func (r *runner) runConsumer(ctx, drain context.Context) error {
	defer r.closeIntake()
	if r.consumer.sub != nil {
		<-ctx.Done()
		r.drainSubscription(drain)
		return nil
	}
	r.watchConsumer(ctx)
	r.drainConsumeContext(drain)
	return nil
}

// watchConsumer runs requested resets, recreates the consumer after every
// reconnection and refreshes the consumer's info, until ctx is done.
//
// What the server delivered while the connection went down is lost in
// transit; the server redelivers it only after AckWait, and only a later
// delivery (which may never come when the stream is idle) would reveal the
// gap. A reset, safe at any time, resumes at the first sequence not
// received.
func (r *runner) watchConsumer(ctx context.Context) {
	c := &r.consumer
	defer r.nc.RemoveStatusListener(c.reconnected)
	reconnected := c.reconnected
	info := time.NewTicker(5 * r.m.opts.FlushInterval)
	defer info.Stop()
	r.refreshConsumerInfo(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case st, ok := <-reconnected:
			if !ok {
				reconnected = nil // the connection closed: no more events
				continue
			}
			if st == nats.CONNECTED {
				r.log.Info("NATS reconnected: recreating the JetStream consumer at the first sequence not received", "next_seq", c.nextSeq.Load())
				r.requestReset(c.epoch.Load())
			}
		case <-c.resetReq:
			r.resetConsumer(ctx)
		case <-info.C:
			r.refreshConsumerInfo(ctx)
		}
	}
}

// resetConsumer stops the current consume context and recreates the
// consumer at the first sequence not yet handed to the intake, retrying
// (the server may be down) until it succeeds or ctx is done.
func (r *runner) resetConsumer(ctx context.Context) {
	c := &r.consumer
	defer c.resetting.Store(false)
	if c.cc != nil {
		c.cc.Stop()
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ctx.Err() == nil; attempt++ {
		c.deliverMu.Lock()
		start := c.nextSeq.Load()
		c.deliverMu.Unlock()
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.startConsumer(actx, start)
		cancel()
		if err == nil {
			r.log.Info("JetStream consumer recreated", "start_seq", start, "attempts", attempt)
			return
		}
		r.log.Warn("JetStream consumer reset failed; retrying", "err", err, "attempt", attempt, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// refreshConsumerInfo reads the consumer's pending count and ack floor for
// the status and metrics.
func (r *runner) refreshConsumerInfo(ctx context.Context) {
	c := &r.consumer
	if c.cons == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ci, err := c.cons.Info(ctx)
	if err != nil {
		return
	}
	c.numPending.Store(ci.NumPending)
	c.ackFloor.Store(ci.AckFloor.Stream)
	r.refreshFirstSeq(ctx)
	r.publishStatus()
}

// drainSubscription drains the core subscription: the client delivers what
// it holds, then closes it. drain cuts the wait short.
func (r *runner) drainSubscription(drain context.Context) {
	sub := r.consumer.sub
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		_ = sub.Unsubscribe()
	}
	select {
	case <-closed:
	case <-drain.Done():
	}
}

// drainConsumeContext drains the JetStream consume context: the client
// delivers what it prefetched, then closes it. When drain is done first,
// the rest is dropped (JetStream redelivers it to the next run).
func (r *runner) drainConsumeContext(drain context.Context) {
	cc := r.consumer.cc
	if cc == nil {
		return
	}
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-drain.Done():
		cc.Stop()
	}
}
