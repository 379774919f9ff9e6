package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
	"github.com/sketchd/sketchd/sketch"
)

// A backfill (PATCH with "backfill": true) replays what the stream's
// JetStream stream still holds, from its first sequence up to the last one
// the stream had applied when the alter took effect, into the aggregates
// the alter added, and only them. It runs while the stream's runner is
// stopped (events wait in JetStream), so nothing else writes its panes;
// the runner starts when it ends. Each step (up to backfillStepMessages)
// merges its sketches into the stored panes and records its progress in
// one store transaction (store.BackfillPanes), so after a crash the
// backfill resumes after its last step and nothing is applied twice. When
// it completes, the rollup tiers are dropped to be rebuilt with it, and
// the aggregates' since moves back to what the replay covered.
//
// A step writes whole panes (every slot, not only the added aggregates'),
// so on a stream of many keys with large sketches 512 messages can touch
// more pane bytes than one Badger transaction holds (15% of a memtable).
// Such a step is made smaller, by whole messages, and tried again
// (commitStep): its progress still names the last message it holds and
// it is still one transaction, so the atomicity argument above is
// unchanged. The step is not split into several transactions instead: a
// crash between them would leave panes merged ahead of the progress, and
// count-min, t-digest and reservoir merges are not idempotent. The
// messages fetched and not yet applied stay in memory for the next step
// (at most backfillStepMessages of them).

// backfillStepMessages is the most messages one backfill step applies.
const backfillStepMessages = 512

// afterBackfillStep, when set (tests), is called after each committed
// step; true stops the backfill there as a crash would, leaving its
// progress stored and the runner stopped.
var afterBackfillStep func(st sketchd.BackfillStatus) bool

// errBackfillStopped is a backfill stopped by afterBackfillStep.
var errBackfillStopped = errors.New("backfill stopped after a step")

// backfillRun is one running backfill; its goroutine starts the stream's
// runner when the backfill ends.
type backfillRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// planBackfill returns the backfill to run (Stream.Apply checked that the
// stream can be backfilled); ok is false when there is nothing to replay (the stream
// applied nothing yet, or JetStream no longer holds any of it).
func (m *Manager) planBackfill(ctx context.Context, id uint32, spec *sketchd.Stream, added []string) (st sketchd.BackfillStatus, ok bool, err error) {
	cp, found, err := m.db.Checkpoint(ctx, id)
	if err != nil || !found || cp.Position == 0 {
		return st, false, err
	}
	to := sketchd.PositionSeq(cp.Position)
	_, js := m.conns()
	s, err := js.Stream(ctx, spec.JetStreamStream)
	if err != nil {
		return st, false, fmt.Errorf("backfill: JetStream stream %s: %w: %w", spec.JetStreamStream, err, sketchd.ErrUnavailable)
	}
	first := s.CachedInfo().State.FirstSeq
	if first == 0 || first > to {
		return st, false, nil
	}
	return sketchd.BackfillStatus{Aggregates: added, From: first, To: to, Done: first - 1, State: "running"}, true, nil
}

// startBackfill runs st in the background; the stream's runner starts when
// it ends (not when it is canceled: stopBackfill's caller decides).
func (m *Manager) startBackfill(info store.StreamInfo, st sketchd.BackfillStatus) {
	name := info.Spec.Name
	ctx, cancel := context.WithCancel(m.ctx)
	b := &backfillRun{cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	if m.backfills == nil {
		m.backfills = map[string]*backfillRun{}
	}
	m.backfills[name] = b
	m.mu.Unlock()
	go func() {
		defer close(b.done)
		defer cancel()
		next, ok := m.runBackfill(ctx, info, st)
		if ok {
			if err := m.startRunner(m.ctx, next); err != nil {
				m.log.Error("stream failed to start after its backfill", "stream", name, "err", err)
			}
		}
		m.mu.Lock()
		delete(m.backfills, name)
		m.mu.Unlock()
	}()
}

// stopBackfill cancels the stream's backfill, if one runs, and waits for
// it: its progress stays stored and the next start resumes it.
func (m *Manager) stopBackfill(name string) {
	m.mu.Lock()
	b := m.backfills[name]
	m.mu.Unlock()
	if b != nil {
		b.cancel()
		<-b.done
	}
}

// backfilling reports whether the stream has a backfill running.
func (m *Manager) backfilling(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.backfills[name] != nil
}

// resumeBackfill starts the stream's unfinished backfill at start-up, if it
// has one; false means the caller starts the runner.
func (m *Manager) resumeBackfill(ctx context.Context, info store.StreamInfo) bool {
	st, ok, err := m.db.Backfill(ctx, info.ID)
	if err != nil || !ok || st.State != "running" {
		return false
	}
	for _, n := range st.Aggregates {
		if _, ok := info.Spec.Aggregates[n]; !ok {
			// The alter that planned it never landed (a crash before its
			// spec was stored): nothing to resume.
			st.State, st.Error = "failed", "aggregate "+n+" is not in the stream (the alter did not complete)"
			_ = m.db.SetBackfill(ctx, info.ID, st)
			return false
		}
	}
	m.log.Info("resuming backfill", "stream", info.Spec.Name, "done", st.Done, "to", st.To)
	m.startBackfill(info, st)
	return true
}

// runBackfill replays, then completes the backfill (or records its
// failure); it returns the stream's info to start the runner with, and
// false when the backfill was canceled (the runner stays stopped).
func (m *Manager) runBackfill(ctx context.Context, info store.StreamInfo, st sketchd.BackfillStatus) (store.StreamInfo, bool) {
	log := m.log.With("stream", info.Spec.Name)
	err := m.replay(ctx, info, &st)
	if ctx.Err() != nil || errors.Is(err, errBackfillStopped) {
		return info, false
	}
	if err == nil {
		var next store.StreamInfo
		if next, err = m.completeBackfill(ctx, info, &st); err == nil {
			log.Info("backfill done", "aggregates", st.Aggregates, "from", st.From, "to", st.To, "events", st.Events)
			return next, true
		}
	}
	st.State, st.Error = "failed", err.Error()
	if serr := m.db.SetBackfill(context.WithoutCancel(ctx), info.ID, st); serr != nil {
		log.Error("record backfill failure", "err", serr)
	}
	log.Error("backfill failed; the added aggregates keep their since", "err", err)
	return info, true
}

// completeBackfill drops the rollup tiers (rebuilt with the backfilled
// sketches), moves the aggregates' since back to what the replay covered
// (an alter in the log) and marks the backfill done. Each step is
// idempotent, so a crash in between repeats it.
func (m *Manager) completeBackfill(ctx context.Context, info store.StreamInfo, st *sketchd.BackfillStatus) (store.StreamInfo, error) {
	if len(info.Spec.Rollups) > 0 {
		if err := m.db.ResetTiers(ctx, info.ID); err != nil {
			return info, err
		}
	}
	spec := info.Spec
	spec.Aggregates = maps.Clone(spec.Aggregates)
	var changes []string
	for _, n := range st.Aggregates {
		agg := spec.Aggregates[n]
		if !sameTime(agg.Since, st.Covers) {
			changes = append(changes, fmt.Sprintf("aggregates.%s: backfilled from JetStream sequences %d..%d (%d events); since %s -> %s", n, st.From, st.To, st.Events, timeString(agg.Since), timeString(st.Covers)))
			agg.Since = st.Covers
			spec.Aggregates[n] = agg
		}
	}
	next := info
	if len(changes) > 0 {
		var err error
		if next, err = m.db.AlterStream(ctx, spec.Name, spec, sketchd.Alteration{At: m.now().UTC(), Changes: changes}); err != nil {
			return info, err
		}
	}
	st.State = "done"
	return next, m.db.SetBackfill(ctx, info.ID, *st)
}

// backfillTarget is one aggregate a backfill fills.
type backfillTarget struct {
	value  int // index in Event.Values (AggregateNames order)
	slot   int // position in the pane (Stream.Slot)
	params sketch.Params
}

// replay applies the JetStream stream's messages (st.Done, st.To] to the
// stored panes, step by step.
func (m *Manager) replay(ctx context.Context, info store.StreamInfo, st *sketchd.BackfillStatus) error {
	spec := info.Spec
	targets, err := backfillTargets(&spec, st.Aggregates)
	if err != nil {
		return err
	}
	if st.Done >= st.To {
		return nil
	}
	dec, err := decode.New(spec, m.opts.Decode)
	if err != nil {
		return err
	}
	_, js := m.conns()
	cons, err := js.OrderedConsumer(ctx, spec.JetStreamStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{spec.Subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    st.Done + 1,
	})
	if err != nil {
		return fmt.Errorf("backfill consumer: %w", err)
	}
	step := newBackfillStep(&spec, targets, st.From)
	var pending []backfillMsg // fetched, not yet applied, in sequence order
	reached := false          // a message at or past To came: no more to fetch
	empty := 0
	for st.Done < st.To {
		if len(pending) < backfillStepMessages && !reached {
			batch, err := fetchBackfill(cons, backfillStepMessages-len(pending))
			if err != nil {
				return err
			}
			for msg := range batch.Messages() {
				empty = 0
				meta, err := ackSeqsOf(msg.Reply()) // ackmeta.go: Metadata's sequence, without its parse
				if err != nil {
					return err
				}
				seq := meta.stream
				reached = reached || seq >= st.To
				if seq > st.To {
					continue
				}
				// nats.go gives each message its own copy of the data.
				pending = append(pending, backfillMsg{seq: seq, data: msg.Data()})
			}
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
				return fmt.Errorf("backfill fetch: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n := 0
		if len(pending) == 0 {
			// Nothing more at or below To (the rest was deleted or aged
			// out while we replayed): done, once two fetches in a row came
			// back empty and the consumer has nothing pending. A fetch
			// can come back empty with messages left (it waits 1 s, and
			// a loaded server may not deliver in time): until 2026-12-08
			// two such fetches anywhere in a replay ended it, and the
			// progress moved to To over messages never applied.
			if empty++; !reached && empty < 2 {
				continue
			}
			if !reached {
				left, err := consumerPending(ctx, cons)
				if err != nil {
					return err
				}
				if left > 0 {
					continue
				}
			}
			step.build(dec, nil)
			if err := step.commit(ctx, m.db, info.ID, st, st.To); err != nil {
				return err
			}
		} else {
			var err error
			if n, err = m.commitStep(ctx, step, dec, info.ID, st, pending); err != nil {
				return err
			}
		}
		pending = pending[n:]
		if afterBackfillStep != nil && afterBackfillStep(*st) {
			return errBackfillStopped
		}
	}
	return nil
}

// consumerPending returns how many messages the backfill's consumer has
// not delivered yet (past To, or not yet fetched).
func consumerPending(ctx context.Context, cons jetstream.Consumer) (uint64, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("backfill consumer info: %w", err)
	}
	return info.NumPending, nil
}

// fetchBackfill fetches up to n messages, waiting at most 1 s for them.
func fetchBackfill(cons jetstream.Consumer, n int) (jetstream.MessageBatch, error) {
	if beforeBackfillFetch != nil && beforeBackfillFetch() {
		return emptyBatch{}, nil
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return nil, fmt.Errorf("backfill fetch: %w", err)
	}
	return batch, nil
}

// beforeBackfillFetch, when set (tests), is called before each fetch of a
// backfill; true makes the fetch come back empty without asking the
// server (as one that timed out on a loaded server).
var beforeBackfillFetch func() bool

// emptyBatch is a fetch that brought no message.
type emptyBatch struct{}

func (emptyBatch) Messages() <-chan jetstream.Msg {
	c := make(chan jetstream.Msg)
	close(c)
	return c
}

func (emptyBatch) Error() error { return nil }

// backfillMsg is one fetched message a backfill has not applied yet.
type backfillMsg struct {
	seq  uint64
	data []byte
}

// commitStep applies the longest prefix of pending (at least its first
// message) whose panes fit one store transaction as one step, and returns
// its length. It starts with every pending message, or with as many as
// touch at most step.maxPanes panes once a step did not fit; a step that
// does not fit is built again with the messages whose panes did, and a
// first message whose panes alone do not fit fails the backfill. Each try
// holds fewer messages than the one before, so it ends.
func (m *Manager) commitStep(ctx context.Context, step *backfillStep, dec *decode.Decoder, id uint32, st *sketchd.BackfillStatus, pending []backfillMsg) (int, error) {
	n := len(pending)
	for {
		n = step.build(dec, pending[:n])
		if step.maxPanes > 0 && n > 1 && len(step.order) > step.maxPanes {
			n = step.within(step.maxPanes) // the last message took it past the limit
			continue
		}
		err := step.commit(ctx, m.db, id, st, pending[n-1].seq)
		var big *store.StepTooLargeError
		if !errors.As(err, &big) {
			return n, err
		}
		if n == 1 {
			return 0, fmt.Errorf("backfill: the message at sequence %d alone touches more pane bytes (%d panes) than one store transaction holds: %w", pending[0].seq, big.Panes, err)
		}
		step.maxPanes = max(big.Fit, 1)
		n = step.within(step.maxPanes)
	}
}

func backfillTargets(spec *sketchd.Stream, names []string) ([]backfillTarget, error) {
	all := spec.AggregateNames()
	var out []backfillTarget
	for _, n := range names {
		vi, ok := slices.BinarySearch(all, n)
		slot, ok2 := spec.Slot(n)
		if !ok || !ok2 {
			return nil, fmt.Errorf("aggregate %q was removed during its backfill", n)
		}
		p, err := spec.Aggregates[n].SketchParams()
		if err != nil {
			return nil, err
		}
		out = append(out, backfillTarget{value: vi, slot: slot, params: p})
	}
	return out, nil
}

// backfillStep gathers one step's sketches per pane (build), then merges
// them into the stored panes with the progress (commit).
type backfillStep struct {
	spec    *sketchd.Stream
	targets []backfillTarget
	aged    bool  // JetStream no longer holds the stream's first events
	since   int64 // events at or after it reached the aggregates live
	panes   map[store.PaneAt][]sketch.Sketch
	order   []store.PaneAt // the panes in the order the messages touched them
	touched []int          // len(order) after each message of the step
	events  uint64
	first   int64 // time of the first event replayed (aged only), or NoTime
	err     error
	// maxPanes is the most panes a step touches (0 = no limit): how many
	// panes fit when a step last did not, for the rest of this run. It
	// only shrinks; a resumed backfill learns it again.
	maxPanes int
}

func newBackfillStep(spec *sketchd.Stream, targets []backfillTarget, from uint64) *backfillStep {
	since := int64(1<<63 - 1)
	if s := spec.Aggregates[spec.AggregateNames()[targets[0].value]].Since; s != nil {
		since = s.UnixNano()
	}
	return &backfillStep{spec: spec, targets: targets, aged: from > 1, since: since,
		panes: map[store.PaneAt][]sketch.Sketch{}, first: sketchd.NoTime}
}

// build starts the step again with msgs, stopping before a message once
// the step touches maxPanes panes (when set; the first message is always
// taken). It returns how many messages it took.
func (b *backfillStep) build(dec *decode.Decoder, msgs []backfillMsg) int {
	clear(b.panes)
	b.order, b.touched, b.events, b.first, b.err = b.order[:0], b.touched[:0], 0, sketchd.NoTime, nil
	for i, msg := range msgs {
		if b.maxPanes > 0 && i > 0 && len(b.order) >= b.maxPanes {
			return i
		}
		b.add(dec, msg.data, msg.seq)
		b.touched = append(b.touched, len(b.order))
	}
	return len(msgs)
}

// within returns how many of the built step's first messages touch at
// most panes panes, at least 1 and fewer than the step holds (the caller
// has at least 2).
func (b *backfillStep) within(panes int) int {
	k, _ := slices.BinarySearch(b.touched, panes+1) // touched never decreases
	return min(max(k, 1), len(b.touched)-1)
}

// add decodes one message and adds its events' values to their panes'
// sketches. Invalid input is skipped (the stream dead-lettered it when it
// first came).
func (b *backfillStep) add(dec *decode.Decoder, msg []byte, seq uint64) {
	g := int64(b.spec.Granularity)
	dec.Decode(msg, seq, time.Now().UnixNano(), func(ev *sketchd.Event) {
		if b.err != nil || ev.Time >= b.since {
			return
		}
		if b.first == sketchd.NoTime {
			b.first = ev.Time
		}
		at := store.PaneAt{Key: ev.Key, Start: sketchd.PaneStart(ev.Time, g)}
		sks, ok := b.panes[at]
		if !ok {
			at.Key = string([]byte(ev.Key))
			sks = make([]sketch.Sketch, len(b.targets))
			b.panes[at] = sks
			b.order = append(b.order, at)
		}
		for i, t := range b.targets {
			v := &ev.Values[t.value]
			if !v.Present {
				continue
			}
			if sks[i] == nil {
				if sks[i], b.err = sketch.New(t.params); b.err != nil {
					return
				}
			}
			if b.err = sketch.Add(sks[i], slices.Clone(v.Bytes), v.Num, window.ReservoirTag(b.spec.Name, ev.Pos)); b.err != nil {
				return
			}
		}
		b.events++
	}, func([]byte, decode.Reason, string) {})
}

// commit merges the step into the stored panes and records st as done up
// to seq, in one store transaction; then it starts a new step.
func (b *backfillStep) commit(ctx context.Context, db Store, id uint32, st *sketchd.BackfillStatus, seq uint64) error {
	if b.err != nil {
		return b.err
	}
	next := *st
	next.Done = seq
	next.Events += b.events
	if b.aged && next.Covers == nil && b.first != sketchd.NoTime {
		// Events JetStream no longer holds were applied while the max event
		// time was at most first + out-of-orderness + lateness + one pane
		// (else the first replayed event would have been too late): panes
		// after that are complete.
		g := int64(b.spec.Granularity)
		c := sketchd.PaneStart(b.first+int64(b.spec.MaxOutOfOrderness)+int64(b.spec.AllowedLateness)+g, g) + g
		t := time.Unix(0, min(c, b.since)).UTC()
		next.Covers = &t
	}
	layout := len(b.spec.SlotNames())
	edit := func(p *sketchd.PaneRecord) error {
		sks := b.panes[store.PaneAt{Key: p.Key, Start: p.Start}]
		for len(p.Sketches) < layout {
			p.Sketches = append(p.Sketches, nil)
		}
		for i, t := range b.targets {
			add := sks[i]
			if add == nil {
				continue
			}
			if cur := sketchd.SlotBlob(p, t.slot); len(cur) > 0 {
				base, err := sketchd.DecodeSketch(cur, t.params.Kind)
				if err != nil {
					return fmt.Errorf("pane %d of key %q: %w", p.Start, p.Key, err)
				}
				if err := base.Merge(add); err != nil {
					return err
				}
				add = base
			}
			blob, err := add.AppendBinary(nil)
			if err != nil {
				return err
			}
			p.Sketches[t.slot] = blob
		}
		return nil
	}
	if err := db.BackfillPanes(ctx, id, b.order, edit, next); err != nil {
		return err
	}
	*st = next
	b.panes, b.order, b.events = map[store.PaneAt][]sketch.Sketch{}, nil, 0
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func timeString(t *time.Time) string {
	if t == nil {
		return "(always)"
	}
	return t.UTC().Format(time.RFC3339)
}

// backfillStatus adds the stream's backfill, if it has one, to st: its
// state is "backfilling" while it runs.
func (m *Manager) backfillStatus(ctx context.Context, st *sketchd.StreamStatus) {
	bf, ok, err := m.db.Backfill(ctx, st.ID)
	if err != nil || !ok {
		return
	}
	st.Backfill = &bf
	if m.backfilling(st.Spec.Name) {
		st.State = "backfilling"
	}
}
