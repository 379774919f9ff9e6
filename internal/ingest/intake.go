package ingest

// The intake: it takes the messages the consumer delivers, decodes them,
// cuts them into batches and feeds the aggregator in source order, and
// publishes what is rejected to the dead-letter subjects.
//
// Goroutines:
//
//   - runIntake, one per stream: decodes, batches, calls Process, sends
//     dead letters, publishes the status after each batch. It waits at the
//     committer's intake gate while commits fail, and ends when the queue
//     is closed and empty.
//   - the NATS client's delivery goroutine enters through send, which
//     blocks while the queue is full: backpressure reaches the client,
//     which stops pulling (JetStream) or drops and counts (core NATS).
//
// Fields (intakeState): queue and closing, guarded by sendMu (senders hold
// it for reading; closeIntake, called by the consumer once drained, for
// writing); dec belongs to runIntake; done is closed when runIntake ends;
// the counters are written by runIntake and send, read by the status and
// metrics.

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/window"
)

type intakeState struct {
	queue   chan inMsg
	sendMu  sync.RWMutex
	closing bool // guarded by sendMu
	dec     *decode.Decoder
	done    chan struct{} // closed when runIntake returns

	received      atomic.Uint64 // messages
	receivedBytes atomic.Uint64
	deadLettered  atomic.Uint64
	lateLettered  atomic.Uint64
	publishErrors atomic.Uint64
	dropped       atomic.Uint64 // core messages dropped after the stream stopped

	// letters bounds the dead and late letters the stream publishes
	// (deadletter.go); what it holds back is counted, not published.
	letters        *rate.Limiter
	deadSuppressed atomic.Uint64
	lateSuppressed atomic.Uint64
}

func (in *intakeState) init(queueLen int) {
	in.queue = make(chan inMsg, queueLen)
	in.done = make(chan struct{})
}

// inMsg is one NATS message on its way to the intake.
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

// send hands a message to the intake, blocking while its queue is full
// (backpressure). After the stream stops, messages are dropped: JetStream
// redelivers them, core NATS counts them.
func (r *runner) send(m inMsg) {
	in := &r.intake
	in.sendMu.RLock()
	defer in.sendMu.RUnlock()
	if in.closing {
		in.dropped.Add(1)
		return
	}
	in.queue <- m
}

// closeIntake closes the queue, once: runIntake ends when it is empty.
func (r *runner) closeIntake() {
	in := &r.intake
	in.sendMu.Lock()
	defer in.sendMu.Unlock()
	if !in.closing {
		in.closing = true
		close(in.queue)
	}
}

// runIntake is the intake's goroutine. ctx is done when the stream stops
// (the gate then stays open); drain interrupts a blocked Process when the
// stop's deadline passes.
func (r *runner) runIntake(ctx, drain context.Context) error {
	defer close(r.intake.done)
	var bt batcher
	for m := range r.intake.queue {
		r.committer.gate.wait(ctx)
		r.takeBatch(&bt, m)
		r.process(drain, &bt)
		bt.release()
		r.publishStatus()
	}
	return nil
}

// batcher is runIntake's batch under construction.
type batcher struct {
	b    window.Batch
	msgs []inMsg
	evs  []evRef // per batch index, for late dead letters
}

// release lets go of the processed batch's messages, keeping the slices
// for the next: a new 512-message slice per batch (most of them a
// message or two at a steady rate) was 900 MB of garbage in the load
// runner's 36 s at 1,000 queries/s, beside the queries' own.
func (bt *batcher) release() {
	clear(bt.msgs)
	clear(bt.evs)
	bt.msgs, bt.evs = bt.msgs[:0], bt.evs[:0]
}

// evRef locates an event of a batch in its message.
type evRef struct {
	raw  []byte
	src  *inMsg
	line int
}

// takeBatch decodes first and the messages already queued behind it, up to
// the batch bounds, into a fresh batch.
func (r *runner) takeBatch(bt *batcher, first inMsg) {
	// A NATS message's payload is the client's own allocation for that
	// message, never written again: the batch may keep its bytes
	// (RetainRaw) instead of copying them.
	bt.b.Reset()
	bt.b.Now, bt.b.RetainRaw = r.m.now().UnixNano(), true
	bt.evs = bt.evs[:0]
	// Decode as messages are taken, so the event bound holds (a batch is
	// at most maxBatchEvents plus one message): a batch's events may all
	// open new panes before a shard can evict. msgs never grows past its
	// capacity, so evs may point into it; nothing points into it once the
	// batch is processed (release), so it is reused.
	if cap(bt.msgs) < maxBatchMsgs {
		bt.msgs = make([]inMsg, 0, maxBatchMsgs)
	}
	bt.msgs = append(bt.msgs[:0], first)
	r.decode(bt, &bt.msgs[0])
	for len(bt.msgs) < maxBatchMsgs && bt.b.Len() < maxBatchEvents {
		select {
		case m, ok := <-r.intake.queue:
			if !ok {
				return
			}
			bt.msgs = append(bt.msgs, m)
			r.decode(bt, &bt.msgs[len(bt.msgs)-1])
		default:
			return
		}
	}
}

// decode adds the events of m to the batch and dead-letters its invalid
// input.
func (r *runner) decode(bt *batcher, m *inMsg) {
	in := &r.intake
	in.received.Add(1)
	in.receivedBytes.Add(uint64(len(m.data)))
	line := 0
	var bad badLines
	in.dec.Decode(m.data, m.seq, bt.b.Now,
		func(ev *sketchd.Event) {
			bt.b.Add(ev)
			bt.evs = append(bt.evs, evRef{raw: ev.Raw, src: m, line: line})
			line++
		},
		func(raw []byte, reason decode.Reason, detail string) {
			bt.b.AddInvalid(string(reason))
			bad.add(raw, line, string(reason), detail)
			line++
		})
	if r.spec.DeadLetterSubject != "" && bad.n > 0 {
		r.deadLetter(m, &bad)
	}
	if m.seq > 0 {
		bt.b.Position = sketchd.Position(m.seq, sketchd.MaxEventsPerMessage-1)
		bt.b.Token = ackToken{msg: m.js, epoch: m.epoch}
	}
}

// process feeds the batch to the aggregator and dead-letters the events it
// rejects as too late.
func (r *runner) process(ctx context.Context, bt *batcher) {
	rej, err := r.agg.Process(ctx, &bt.b)
	if err != nil {
		if !errors.Is(err, window.ErrClosed) || ctx.Err() == nil {
			r.log.Error("process batch", "err", err)
		}
		r.setErr(err)
		return
	}
	if r.spec.Late != sketchd.LateDeadLetter {
		return
	}
	for _, rj := range rej {
		if !r.intake.letters.Allow() {
			r.intake.lateSuppressed.Add(1)
			continue
		}
		e := bt.evs[rj.Index]
		r.publish(r.spec.LateSubject, e.raw, e.src, e.line, rj.Reason, "", nil)
		r.intake.lateLettered.Add(1)
	}
}

// deadLetterHeaderRoom is the room left for a dead letter's headers: a
// larger event is truncated to the server's max payload minus this.
const deadLetterHeaderRoom = 4 << 10

// publish sends a rejected event to a dead-letter subject with headers that
// say why and where it came from. JetStream sources get a Nats-Msg-Id, so a
// replay after a crash does not dead-letter the event twice when the
// dead-letter subject is captured by a JetStream stream.
func (r *runner) publish(subject string, raw []byte, src *inMsg, index int, reason, detail string, hdr nats.Header) {
	msg := nats.NewMsg(subject)
	for k, v := range hdr {
		msg.Header[k] = v
	}
	if maxp := int(r.nc.MaxPayload()); maxp > 0 && len(raw) > maxp-deadLetterHeaderRoom {
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
	if err := r.nc.PublishMsg(msg); err != nil {
		r.intake.publishErrors.Add(1)
		r.log.Warn("dead-letter publish failed", "subject", subject, "reason", reason, "err", err)
	}
}
