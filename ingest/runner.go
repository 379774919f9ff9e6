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
	"github.com/sketchd/sketchd/store"
	"github.com/sketchd/sketchd/window"
)

// inMsg is one NATS message on its way to the processing goroutine.
type inMsg struct {
	data    []byte
	subject string
	seq     uint64        // JetStream stream sequence; 0 for core NATS
	js      jetstream.Msg // nil for core NATS
}

// runner consumes one stream.
type runner struct {
	m    *Manager
	info store.StreamInfo
	spec sketchd.Stream
	log  *slog.Logger
	agg  *window.Aggregator
	dec  *Decoder

	ch       chan inMsg
	sendMu   sync.RWMutex // held (read) while a NATS callback sends on ch
	closing  bool         // guarded by sendMu
	sub      *nats.Subscription
	cons     jetstream.Consumer
	cc       jetstream.ConsumeContext
	loopDone chan struct{}

	flushStop chan struct{}
	flushDone chan struct{}
	pending   *window.Snapshot // a flush whose commit failed; retried (flusher only)
	failing   atomic.Bool      // the last commit failed: Ready reports it
	last      sketchd.Checkpoint

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
	}
	r.committedWM.Store(noTimeWM)
	dec, err := NewDecoder(spec, m.opts.Decode)
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
	agg, err := window.New(spec, cp, m.now().UnixNano(), paneLoader{m.db, info.ID}, wopts)
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
	if seq := sketchd.PositionSeq(r.last.Position); seq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = seq + 1
	}
	r.nextSeq.Store(max(cfg.OptStartSeq, 1))
	if err := s.DeleteConsumer(ctx, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("JetStream consumer: reset to the checkpoint: %w", err)
	}
	cons, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("JetStream consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			r.log.Error("JetStream message without metadata", "err", err)
			return
		}
		seq := md.Sequence.Stream
		if want := r.nextSeq.Load(); seq > want && md.NumDelivered == 1 {
			// Messages between want and seq are no longer in the
			// JetStream stream (its limits removed them): they are lost
			// to sketchd, and counted.
			if n, err := r.streamGap(want, seq); n > 0 {
				r.gapped.Add(n)
				r.log.Warn("JetStream messages missing before this one (removed by the stream's limits?)",
					"expected_seq", want, "seq", seq, "missing", n, "err", err)
			}
		}
		if seq >= r.nextSeq.Load() {
			r.nextSeq.Store(seq + 1)
		}
		r.send(inMsg{data: m.Data(), subject: m.Subject(), seq: seq, js: m})
	},
		jetstream.PullMaxMessages(r.m.opts.PullMaxMessages),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Warn("JetStream consume", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("JetStream consume: %w", err)
	}
	r.cons, r.cc = cons, cc
	return nil
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
		var b window.Batch
		b.Now = r.m.now().UnixNano()
		evs = evs[:0]
		msgs := []inMsg{m}
	more:
		for len(msgs) < maxBatchMsgs && b.Len() < maxBatchEvents {
			select {
			case m2, ok := <-r.ch:
				if !ok {
					break more
				}
				msgs = append(msgs, m2)
			default:
				break more
			}
		}
		for i := range msgs {
			evs = r.decode(&b, &msgs[i], evs)
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
		func(raw []byte, reason Reason, detail string) {
			b.AddInvalid(string(reason))
			if r.spec.DeadLetterSubject != "" {
				r.publish(r.spec.DeadLetterSubject, raw, m, line, string(reason), detail)
				r.deadLettered.Add(1)
			}
			line++
		})
	if m.seq > 0 {
		b.Position = sketchd.Position(m.seq, sketchd.MaxEventsPerMessage-1)
		b.Token = m.js
	}
	return evs
}

func float64bits(f float64) uint64 { return math.Float64bits(f) }

// publish sends a rejected event to a dead-letter subject with headers that
// say why and where it came from. JetStream sources get a Nats-Msg-Id, so a
// replay after a crash does not dead-letter the event twice when the
// dead-letter subject is captured by a JetStream stream.
func (r *runner) publish(subject string, raw []byte, src *inMsg, index int, reason, detail string) {
	msg := nats.NewMsg(subject)
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
// watermark of an idle stream.
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
			if err := r.flush(context.Background()); err != nil {
				r.log.Error("flush failed; will retry", "err", err)
			}
			if n++; n%5 == 1 {
				r.refreshConsumerInfo()
			}
		}
	}
}

// flush commits the aggregator's dirty panes and checkpoint, and acks the
// JetStream messages the checkpoint covers once the commit is durable.
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
		return nil
	}
	if err := r.m.db.Commit(ctx, r.info.ID, store.Flush{Panes: snap.Panes, Checkpoint: snap.Checkpoint}); err != nil {
		r.pending = snap
		r.failing.Store(true)
		r.commitErrors.Add(1)
		r.setErr(err)
		return fmt.Errorf("commit: %w", err)
	}
	r.pending = nil
	r.failing.Store(false)
	r.last = snap.Checkpoint
	r.agg.Committed(snap)
	r.committedWM.Store(snap.Checkpoint.Watermark)
	r.lastCommit.Store(time.Now().UnixNano())
	r.commits.Add(1)
	r.lastErr.Store(nil)
	if m, ok := snap.Token.(jetstream.Msg); ok && m != nil {
		// Dead letters published before the covered messages must reach
		// the server before those messages are acked.
		if err := r.m.nc.FlushTimeout(5 * time.Second); err != nil {
			r.log.Warn("flush NATS before ack", "err", err)
		}
		if err := m.Ack(); err != nil {
			// Not fatal: the messages are redelivered and ignored as
			// already contained in the checkpoint.
			r.log.Warn("ack failed", "err", err)
		}
	}
	r.flushSeconds.Store(float64bits(time.Since(start).Seconds()))
	return nil
}

func (r *runner) refreshConsumerInfo() {
	if r.cons == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ci, err := r.cons.Info(ctx)
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
	switch {
	case r.cc != nil:
		r.cc.Drain()
		select {
		case <-r.cc.Closed():
		case <-ctx.Done():
			r.cc.Stop()
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
