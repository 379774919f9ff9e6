package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
)

// inMsg is one NATS message on its way to the processing goroutine.
type inMsg struct {
	data    []byte
	subject string
	seq     uint64        // JetStream stream sequence; 0 for core NATS
	js      jetstream.Msg // nil for core NATS
	epoch   uint64        // the consume context that delivered js
}

// ackToken is a batch's window.Batch.Token: the last JetStream message it
// covers, and the consume context that delivered it. A message of a
// consumer since recreated is not acked: the new consumer starts past it,
// and an ack with the old consumer's delivery sequence would confuse the
// new one's ack floor.
type ackToken struct {
	msg   jetstream.Msg
	epoch uint64
}

// runner consumes one stream.
type runner struct {
	m    *Manager
	info store.StreamInfo
	spec sketchd.Stream
	log  *slog.Logger
	agg  *window.Aggregator
	dec  *decode.Decoder

	ch       chan inMsg
	sendMu   sync.RWMutex // held (read) while a NATS callback sends on ch
	closing  bool         // guarded by sendMu
	sub      *nats.Subscription
	loopDone chan struct{}

	// JetStream consumer. deliverMu serializes the consume callbacks (of
	// the current and of a superseded consume context) with a consumer
	// reset; epoch identifies the current consume context: a callback of
	// an older one drops its message.
	jsStream  jetstream.Stream
	deliverMu sync.Mutex
	epoch     atomic.Uint64
	lastDseq  uint64 // consumer sequence of the last delivery (guarded by deliverMu)
	ccMu      sync.Mutex
	cons      jetstream.Consumer       // guarded by ccMu
	cc        jetstream.ConsumeContext // guarded by ccMu
	resetting atomic.Bool
	resetDone chan struct{} // closed when the running reset returns (guarded by ccMu)
	watchDone chan struct{} // closed when watchReconnects returns (nil for core NATS)

	// stopping is closed when stop begins: it releases a paused intake and
	// ends consumer resets.
	stopping chan struct{}
	stopOnce sync.Once

	// Intake gate: closed while commits fail, so ingestion backs up
	// (JetStream stops pulling at MaxAckPending/PullMaxMessages; core NATS
	// drops and counts) instead of piling uncommitted panes in memory.
	gateMu sync.Mutex
	gate   chan struct{} // nil = open; else closed when the gate opens

	flushStop chan struct{}
	flushDone chan struct{}
	pending   *sketchd.Flush // a flush whose commit failed; retried (flusher only)
	failing   atomic.Bool    // the last commit failed: Ready reports it
	last      sketchd.Checkpoint
	failures  int       // consecutive failed commits (flusher only)
	failSince time.Time // first failure of the current run (flusher only)
	retryAt   time.Time // no commit attempt before (flusher only)

	received      atomic.Uint64 // messages
	receivedBytes atomic.Uint64
	deadLettered  atomic.Uint64
	lateLettered  atomic.Uint64
	publishErrors atomic.Uint64
	dropped       atomic.Uint64 // core messages dropped after the stream stopped
	committedWM   atomic.Int64
	lastCommit    atomic.Int64 // unix ns
	commits       atomic.Uint64
	commitErrors  atomic.Uint64
	flushSeconds  atomic.Uint64 // float64 bits of the last flush+commit duration
	lastErr       atomic.Pointer[string]
	numPending    atomic.Uint64
	nextSeq       atomic.Uint64 // next JetStream sequence expected
	gapped        atomic.Uint64 // JetStream messages skipped by a sequence gap
	ackFloor      atomic.Uint64
	uncommitted   atomic.Int64  // panes held for a commit retry
	resets        atomic.Uint64 // JetStream consumer resets (deliveries lost in transit)
	redelivered   atomic.Uint64 // JetStream redeliveries of messages already processed
	acked         jetstream.Msg // the last message acked (flusher only)
}

// Batching bounds for one Process call.
const (
	maxBatchMsgs   = 512
	maxBatchEvents = 4096
)

func newRunner(ctx context.Context, m *Manager, info store.StreamInfo) (*runner, error) {
	spec := info.Spec
	r := &runner{
		m:         m,
		info:      info,
		spec:      spec,
		log:       m.log.With("stream", spec.Name),
		ch:        make(chan inMsg, m.opts.QueueMessages),
		loopDone:  make(chan struct{}),
		flushStop: make(chan struct{}),
		flushDone: make(chan struct{}),
		stopping:  make(chan struct{}),
	}
	r.committedWM.Store(noTimeWM)
	dec, err := decode.New(spec, m.opts.Decode)
	if err != nil {
		return nil, err
	}
	r.dec = dec
	cp, ok, err := m.db.Checkpoint(ctx, info.ID)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	if ok {
		r.last = cp
		r.committedWM.Store(cp.Watermark)
		r.log.Info("resuming from checkpoint", "position_seq", sketchd.PositionSeq(cp.Position), "watermark", fmtTime(cp.Watermark))
	}
	wopts := m.opts.Window
	wopts.Logger = r.log
	agg, err := window.NewAggregator(spec, cp, m.now().UnixNano(), paneLoader{m.db, info.ID}, wopts)
	if err != nil {
		return nil, err
	}
	r.agg = agg
	go r.loop()
	if err := r.subscribe(ctx); err != nil {
		r.closeIntake()
		<-r.loopDone
		agg.Close()
		return nil, err
	}
	go r.flusher()
	return r, nil
}

// noTimeWM is the watermark before any event (window's math.MinInt64).
const noTimeWM = -1 << 63

type paneLoader struct {
	db Store
	id uint32
}

func (l paneLoader) Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	return l.db.Pane(ctx, l.id, key, start)
}

func (r *runner) subscribe(ctx context.Context) error {
	if !r.spec.JetStream {
		sub, err := r.m.nc.Subscribe(r.spec.Subject, func(m *nats.Msg) {
			r.send(inMsg{data: m.Data, subject: m.Subject})
		})
		if err != nil {
			return fmt.Errorf("subscribe %q: %w", r.spec.Subject, err)
		}
		if err := sub.SetPendingLimits(r.m.opts.CorePendingMsgs, r.m.opts.CorePendingBytes); err != nil {
			_ = sub.Unsubscribe()
			return fmt.Errorf("pending limits: %w", err)
		}
		r.sub = sub
		// Core NATS delivers only to subscriptions the server knows: make
		// sure it knows this one when Start returns, so that events
		// published after Start are not lost to the race. (While
		// disconnected, the client subscribes again on reconnect.)
		if err := r.m.nc.FlushTimeout(5 * time.Second); err != nil {
			r.log.Warn("core subscription not confirmed by the server yet", "err", err)
		}
		return nil
	}
	js := r.m.js
	s, err := js.Stream(ctx, r.spec.JetStreamStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        r.spec.JetStreamStream,
			Description: "sketchd stream " + r.spec.Name,
			Subjects:    []string{r.spec.Subject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      r.spec.JetStreamMaxAge.Std(),
			Duplicates:  2 * time.Minute,
		})
		if err == nil {
			r.log.Info("created JetStream stream", "jetstream_stream", r.spec.JetStreamStream, "subject", r.spec.Subject)
		}
	}
	if err != nil {
		return fmt.Errorf("JetStream stream %q: %w", r.spec.JetStreamStream, err)
	}
	// The checkpoint in the store, not the consumer's ack state, says
	// where to resume. A durable consumer would first deliver new messages
	// and redeliver the ones a crashed process had in flight only after
	// AckWait, out of order; so the consumer is recreated at the
	// checkpoint, and delivery restarts in sequence order from there.
	r.jsStream = s
	start := sketchd.PositionSeq(r.last.Position) + 1
	r.nextSeq.Store(start)
	if err := r.startConsumer(ctx, start); err != nil {
		return err
	}
	r.watchDone = make(chan struct{})
	go r.watchReconnects(r.m.nc.StatusChanged(nats.CONNECTED))
	return nil
}

// watchReconnects recreates the consumer after every reconnection. What
// the server delivered while the connection went down is lost in transit;
// the server redelivers it only after AckWait, and only a later delivery
// (which may never come when the stream is idle) would reveal the gap. A
// reset, safe at any time, resumes at the first sequence not received.
func (r *runner) watchReconnects(ch chan nats.Status) {
	defer close(r.watchDone)
	defer r.m.nc.RemoveStatusListener(ch)
	for {
		select {
		case <-r.stopping:
			return
		case st, ok := <-ch:
			if !ok {
				return
			}
			if st == nats.CONNECTED {
				r.log.Info("NATS reconnected: recreating the JetStream consumer at the first sequence not received", "next_seq", r.nextSeq.Load())
				r.requestReset(r.epoch.Load())
			}
		}
	}
}

// startConsumer (re)creates the durable consumer so that it delivers the
// stream from sequence start on, in order, and starts consuming it.
func (r *runner) startConsumer(ctx context.Context, start uint64) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       consumerName(r.spec.Name),
		Description:   "sketchd stream " + r.spec.Name,
		FilterSubject: r.spec.Subject,
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
	s := r.jsStream
	if err := s.DeleteConsumer(ctx, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("JetStream consumer: reset to sequence %d: %w", start, err)
	}
	cons, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("JetStream consumer: %w", err)
	}
	r.deliverMu.Lock()
	epoch := r.epoch.Add(1)
	r.lastDseq = 0
	r.deliverMu.Unlock()
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
	r.ccMu.Lock()
	r.cons, r.cc = cons, cc
	r.ccMu.Unlock()
	return nil
}

// deliver is the consume callback of the consume context of epoch. It
// hands the messages to the processing goroutine strictly in stream order,
// each once:
//
//   - a redelivery of a message already handed over (AckWait expired
//     before its commit) is dropped: the aggregator holds it already;
//   - a gap in the consumer's delivery sequence means the server delivered
//     messages that never arrived (lost in transit when the connection or
//     the server went down). The server redelivers them only after
//     AckWait, after newer ones, and a newer position would make the
//     aggregator ignore them for good: so the message is dropped and the
//     consumer is recreated at the first sequence not yet handed over.
func (r *runner) deliver(epoch uint64, m jetstream.Msg) {
	r.deliverMu.Lock()
	defer r.deliverMu.Unlock()
	if r.epoch.Load() != epoch {
		return // a superseded consume context
	}
	md, err := m.Metadata()
	if err != nil {
		r.log.Error("JetStream message without metadata", "err", err)
		return
	}
	if dseq := md.Sequence.Consumer; dseq != r.lastDseq+1 {
		r.log.Warn("JetStream deliveries lost in transit; recreating the consumer at the first sequence not received",
			"expected_delivery", r.lastDseq+1, "delivery", dseq, "next_seq", r.nextSeq.Load())
		r.requestResetLocked(epoch)
		return
	}
	r.lastDseq = md.Sequence.Consumer
	seq := md.Sequence.Stream
	want := r.nextSeq.Load()
	if seq < want {
		r.redelivered.Add(1)
		return
	}
	if seq > want && md.NumDelivered == 1 {
		// Messages between want and seq are no longer in the
		// JetStream stream (its limits removed them): they are lost
		// to sketchd, and counted.
		if n, err := r.streamGap(want, seq); n > 0 {
			r.gapped.Add(n)
			r.log.Warn("JetStream messages missing before this one (removed by the stream's limits?)",
				"expected_seq", want, "seq", seq, "missing", n, "err", err)
		}
	}
	r.nextSeq.Store(seq + 1)
	r.send(inMsg{data: m.Data(), subject: m.Subject(), seq: seq, js: m, epoch: epoch})
}

// requestReset starts a consumer reset unless one is running, and makes
// the consume context of epoch stale at once.
func (r *runner) requestReset(epoch uint64) {
	r.deliverMu.Lock()
	defer r.deliverMu.Unlock()
	if r.epoch.Load() == epoch {
		r.requestResetLocked(epoch)
	}
}

// requestResetLocked is requestReset with deliverMu held.
func (r *runner) requestResetLocked(epoch uint64) {
	select {
	case <-r.stopping:
		// Stopping: the message is dropped and redelivered to the next
		// run, which restarts at its checkpoint.
		r.epoch.Add(1)
		return
	default:
	}
	if !r.resetting.CompareAndSwap(false, true) {
		return
	}
	r.epoch.Add(1)
	r.resets.Add(1)
	done := make(chan struct{})
	r.ccMu.Lock()
	r.resetDone = done
	r.ccMu.Unlock()
	go r.resetConsumer(done)
}

// resetConsumer stops the current consume context and recreates the
// consumer at the first sequence not yet handed to the processing
// goroutine, retrying (the server may be down) until it succeeds or the
// stream stops.
func (r *runner) resetConsumer(done chan struct{}) {
	defer close(done)
	defer r.resetting.Store(false)
	r.ccMu.Lock()
	old := r.cc
	r.ccMu.Unlock()
	if old != nil {
		old.Stop()
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-r.stopping:
			return
		default:
		}
		r.deliverMu.Lock()
		start := r.nextSeq.Load()
		r.deliverMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.startConsumer(ctx, start)
		cancel()
		if err == nil {
			r.log.Info("JetStream consumer recreated", "start_seq", start, "attempts", attempt)
			return
		}
		r.log.Warn("JetStream consumer reset failed; retrying", "err", err, "attempt", attempt, "backoff", backoff)
		select {
		case <-r.stopping:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// streamGap returns how many messages of the stream's subject lie in
// [from, to). A filtered consumer skips sequences of other subjects
// legitimately, so the gap is counted only for this stream's subject.
func (r *runner) streamGap(from, to uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := r.m.js.Stream(ctx, r.spec.JetStreamStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.State.FirstSeq > from {
		return min(info.State.FirstSeq, to) - from, nil
	}
	return 0, nil
}

func consumerName(stream string) string { return "sketchd_" + stream }

// send hands a message to the processing goroutine, blocking while its
// queue is full (backpressure). After the stream stops, messages are
// dropped: JetStream redelivers them, core NATS counts them.
func (r *runner) send(m inMsg) {
	r.sendMu.RLock()
	defer r.sendMu.RUnlock()
	if r.closing {
		r.dropped.Add(1)
		return
	}
	r.ch <- m
}

func (r *runner) closeIntake() {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if !r.closing {
		r.closing = true
		close(r.ch)
	}
}

// loop decodes messages, micro-batches them and feeds the aggregator.
func (r *runner) loop() {
	defer close(r.loopDone)
	var evs []evRef // per batch index, for late dead letters
	for m := range r.ch {
		r.waitIntake()
		var b window.Batch
		b.Now = r.m.now().UnixNano()
		evs = evs[:0]
		// Decode as messages are taken, so the event bound holds (a batch
		// is at most maxBatchEvents plus one message): a batch's events
		// may all open new panes before a shard can evict. msgs never
		// grows past its capacity, so evs may point into it.
		msgs := make([]inMsg, 1, maxBatchMsgs)
		msgs[0] = m
		evs = r.decode(&b, &msgs[0], evs)
	more:
		for len(msgs) < maxBatchMsgs && b.Len() < maxBatchEvents {
			select {
			case m2, ok := <-r.ch:
				if !ok {
					break more
				}
				msgs = append(msgs, m2)
				evs = r.decode(&b, &msgs[len(msgs)-1], evs)
			default:
				break more
			}
		}
		rej, err := r.agg.Process(context.Background(), &b)
		if err != nil {
			r.log.Error("process batch", "err", err)
			r.setErr(err)
			continue
		}
		for _, rj := range rej {
			if r.spec.Late == sketchd.LateDeadLetter {
				e := evs[rj.Index]
				r.publish(r.spec.LateSubject, e.raw, e.src, e.line, rj.Reason, "")
				r.lateLettered.Add(1)
			}
		}
	}
}

// evRef locates an event of a batch in its message.
type evRef struct {
	raw  []byte
	src  *inMsg
	line int
}

func (r *runner) decode(b *window.Batch, m *inMsg, evs []evRef) []evRef {
	r.received.Add(1)
	r.receivedBytes.Add(uint64(len(m.data)))
	line := 0
	r.dec.Decode(m.data, m.seq, b.Now,
		func(ev *sketchd.Event) {
			b.Add(ev)
			evs = append(evs, evRef{raw: ev.Raw, src: m, line: line})
			line++
		},
		func(raw []byte, reason decode.Reason, detail string) {
			b.AddInvalid(string(reason))
			if r.spec.DeadLetterSubject != "" {
				r.publish(r.spec.DeadLetterSubject, raw, m, line, string(reason), detail)
				r.deadLettered.Add(1)
			}
			line++
		})
	if m.seq > 0 {
		b.Position = sketchd.Position(m.seq, sketchd.MaxEventsPerMessage-1)
		b.Token = ackToken{msg: m.js, epoch: m.epoch}
	}
	return evs
}

func float64bits(f float64) uint64 { return math.Float64bits(f) }

// deadLetterHeaderRoom is the room left for a dead letter's headers: a
// larger event is truncated to the server's max payload minus this.
const deadLetterHeaderRoom = 4 << 10

// publish sends a rejected event to a dead-letter subject with headers that
// say why and where it came from. JetStream sources get a Nats-Msg-Id, so a
// replay after a crash does not dead-letter the event twice when the
// dead-letter subject is captured by a JetStream stream.
func (r *runner) publish(subject string, raw []byte, src *inMsg, index int, reason, detail string) {
	msg := nats.NewMsg(subject)
	if maxp := int(r.m.nc.MaxPayload()); maxp > 0 && len(raw) > maxp-deadLetterHeaderRoom {
		// It came through NATS, but not with room for our headers: keep
		// the head, and say how long it was.
		msg.Header.Set("Sketchd-Truncated", strconv.Itoa(len(raw)))
		raw = raw[:max(0, maxp-deadLetterHeaderRoom)]
	}
	msg.Data = raw
	msg.Header.Set("Sketchd-Stream", r.spec.Name)
	msg.Header.Set("Sketchd-Reason", reason)
	if detail != "" {
		msg.Header.Set("Sketchd-Detail", detail)
	}
	msg.Header.Set("Sketchd-Subject", src.subject)
	if src.seq > 0 {
		msg.Header.Set("Sketchd-Sequence", strconv.FormatUint(src.seq, 10))
		msg.Header.Set("Sketchd-Index", strconv.Itoa(index))
		msg.Header.Set(nats.MsgIdHdr, r.spec.Name+":"+strconv.FormatUint(src.seq, 10)+":"+strconv.Itoa(index)+":"+reason)
	}
	if err := r.m.nc.PublishMsg(msg); err != nil {
		r.publishErrors.Add(1)
		r.log.Warn("dead-letter publish failed", "subject", subject, "reason", reason, "err", err)
	}
}

// flusher flushes, commits and acks every FlushInterval, and advances the
// watermark of an idle stream. After a failed commit it retries with
// exponential backoff (FlushInterval doubling up to MaxCommitBackoff).
func (r *runner) flusher() {
	defer close(r.flushDone)
	t := time.NewTicker(r.m.opts.FlushInterval)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-r.flushStop:
			return
		case now := <-t.C:
			if err := r.agg.Tick(context.Background(), now.UnixNano()); err != nil {
				continue
			}
			if n++; n%5 == 1 {
				r.refreshConsumerInfo()
			}
			if r.pending != nil && now.Before(r.retryAt) {
				continue
			}
			_ = r.flush(context.Background()) // logged and counted by flush
		}
	}
}

// flush commits the aggregator's dirty panes and checkpoint, and acks the
// JetStream messages the checkpoint covers once the commit is durable.
//
// When the commit fails, the snapshot is kept (and folded into the next
// one), nothing is acked, Ready fails, and the intake is paused until a
// commit succeeds: the unacked input backs up in NATS rather than in
// memory.
func (r *runner) flush(ctx context.Context) error {
	start := time.Now()
	snap, err := r.agg.Flush(ctx)
	if err != nil {
		return err
	}
	if r.pending != nil {
		r.pending.Absorb(snap)
		snap = r.pending
	}
	if len(snap.Panes) == 0 && reflect.DeepEqual(snap.Checkpoint, r.last) {
		r.pending = nil
		r.uncommitted.Store(0)
		return nil
	}
	if err := r.m.db.Commit(ctx, r.info.ID, *snap); err != nil {
		r.pending = snap
		r.uncommitted.Store(int64(len(snap.Panes)))
		r.commitErrors.Add(1)
		r.setErr(err)
		r.failures++
		if r.failures == 1 {
			r.failSince = start
			r.pauseIntake()
			r.failing.Store(true)
		}
		backoff := min(r.m.opts.FlushInterval<<min(r.failures-1, 20), max(r.m.opts.MaxCommitBackoff, r.m.opts.FlushInterval))
		r.retryAt = start.Add(backoff)
		r.log.Error("commit failed: ingestion paused, nothing acked; retrying",
			"err", err, "attempt", r.failures, "failing_for", time.Since(r.failSince).Round(time.Millisecond),
			"retry_in", backoff, "uncommitted_panes", len(snap.Panes), "position_seq", sketchd.PositionSeq(snap.Checkpoint.Position))
		return fmt.Errorf("commit: %w", err)
	}
	if r.failures > 0 {
		r.log.Info("commit succeeded again: ingestion resumed", "failed_attempts", r.failures,
			"outage", time.Since(r.failSince).Round(time.Millisecond), "panes", len(snap.Panes))
		r.failures = 0
	}
	r.pending = nil
	r.uncommitted.Store(0)
	r.last = snap.Checkpoint
	r.agg.Committed(snap)
	r.committedWM.Store(snap.Checkpoint.Watermark)
	r.lastCommit.Store(time.Now().UnixNano())
	r.commits.Add(1)
	r.lastErr.Store(nil)
	r.failing.Store(false)
	r.resumeIntake()
	if t, ok := snap.Token.(ackToken); ok && t.msg != nil {
		switch {
		case t.msg == r.acked:
			// A commit with no new message (an idle stream's watermark
			// advance): its last message is acked already.
		case t.epoch != r.epoch.Load():
			// The consumer was recreated past this message since.
			r.log.Debug("not acking a message of a superseded consumer", "epoch", t.epoch)
		default:
			// Dead letters published before the covered messages must
			// reach the server before those messages are acked.
			if err := r.m.nc.FlushTimeout(5 * time.Second); err != nil {
				r.log.Warn("flush NATS before ack", "err", err)
			}
			switch err := t.msg.Ack(); {
			case err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd):
				r.acked = t.msg
			default:
				// Not fatal: the messages are redelivered and ignored as
				// already contained in the checkpoint.
				r.log.Warn("ack failed", "err", err)
			}
			if r.m.opts.afterAck != nil {
				r.m.opts.afterAck()
			}
		}
	}
	r.flushSeconds.Store(float64bits(time.Since(start).Seconds()))
	return nil
}

// pauseIntake makes the processing goroutine wait before its next batch.
func (r *runner) pauseIntake() {
	r.gateMu.Lock()
	defer r.gateMu.Unlock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
}

// resumeIntake releases the processing goroutine.
func (r *runner) resumeIntake() {
	r.gateMu.Lock()
	defer r.gateMu.Unlock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
}

// waitIntake blocks while the intake is paused, until it resumes or the
// stream stops.
func (r *runner) waitIntake() {
	r.gateMu.Lock()
	g := r.gate
	r.gateMu.Unlock()
	if g == nil {
		return
	}
	select {
	case <-g:
	case <-r.stopping:
	}
}

func (r *runner) refreshConsumerInfo() {
	r.ccMu.Lock()
	cons := r.cons
	r.ccMu.Unlock()
	if cons == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ci, err := cons.Info(ctx)
	if err != nil {
		return
	}
	r.numPending.Store(ci.NumPending)
	r.ackFloor.Store(ci.AckFloor.Stream)
}

func (r *runner) setErr(err error) {
	s := err.Error()
	r.lastErr.Store(&s)
}

// stop drains the subscription, processes what was delivered, and (when
// final) flushes, commits and acks for the last time.
func (r *runner) stop(ctx context.Context, final bool) error {
	r.stopOnce.Do(func() { close(r.stopping) })
	if r.watchDone != nil {
		<-r.watchDone
	}
	r.ccMu.Lock()
	resetDone := r.resetDone
	r.ccMu.Unlock()
	if resetDone != nil {
		select {
		case <-resetDone:
		case <-ctx.Done():
		}
	}
	r.ccMu.Lock()
	cc := r.cc
	r.ccMu.Unlock()
	switch {
	case cc != nil:
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-ctx.Done():
			cc.Stop()
		}
	case r.sub != nil:
		if err := r.sub.Drain(); err != nil {
			_ = r.sub.Unsubscribe()
		}
		for r.sub.IsValid() && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.closeIntake()
	select {
	case <-r.loopDone:
	case <-ctx.Done():
	}
	close(r.flushStop)
	<-r.flushDone
	var err error
	if final {
		err = r.flush(ctx)
		if err != nil && r.pending != nil {
			err = fmt.Errorf("final commit of stream %q failed; its unacked JetStream messages will be redelivered: %w", r.spec.Name, err)
		}
	}
	r.agg.Close()
	return err
}

func (r *runner) status() sketchd.StreamStatus {
	st := r.agg.Stats()
	s := sketchd.StreamStatus{
		ID:                 r.info.ID,
		Spec:               r.spec,
		Created:            r.info.Created,
		State:              "running",
		Watermark:          st.Watermark,
		MaxEventTime:       st.MaxEventTime,
		CommittedWatermark: r.committedWM.Load(),
		Counters:           st.Counters,
		OpenPanes:          st.OpenPanes,
		EvictedEarly:       st.EvictedEarly,
		Pending:            r.numPending.Load(),
		AckFloor:           r.ackFloor.Load(),
		Dropped:            r.dropped.Load(),
	}
	if r.sub != nil {
		if d, err := r.sub.Dropped(); err == nil {
			s.Dropped += uint64(d)
		}
	}
	if ns := r.lastCommit.Load(); ns != 0 {
		s.LastCommit = time.Unix(0, ns).UTC()
	}
	if e := r.lastErr.Load(); e != nil {
		s.Error = *e
	}
	return s
}

func fmtTime(ns int64) string {
	if ns == noTimeWM {
		return "none"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}
