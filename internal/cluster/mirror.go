package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// Mirror applies one stream's changelog to the local store: every
// partition's panes and checkpoints as their owners committed them
// (docs/scale-out.md §2.4). It reads through an ordered consumer on every
// partition's subjects, starting after the lowest changelog sequence any
// partition has applied; a partition's panes are collected until its
// checkpoint record arrives and committed with it (CommitChangelog), so a
// partition's local checkpoint never claims panes the store lacks. Records
// at or below a partition's applied sequence are skipped (its owner
// committed them locally already). Collected panes beyond ChunkPanes are
// written ahead of their checkpoint (ApplyPanes), which bounds memory on a
// fresh restore where one record covers all of a partition's panes.
//
// A Mirror is run by one goroutine (CatchUp or Run); Restored and Stats
// may be read from any. A partition owned here must not be mirrored while
// its owner commits: its owner calls Hold before its claim and Release
// when it stops owning it (without Hold, the check of the store's applied
// sequence before each record narrows, but does not close, the window in
// which the mirror could write an older pane version).
type Mirror struct {
	js    jetstream.JetStream
	cl    Changelog
	sids  []uint32 // store stream ID of each partition
	store ChangelogStore
	log   *slog.Logger

	applied     []uint64                        // per partition: changelog sequence last committed locally
	pending     []map[paneID]sketchd.PaneRecord // per partition: panes read since its last record
	lastSkipped uint64                          // sequence of the last corrupt message counted

	marked    []bool        // per partition: the store's restoring mark is set (restoring.go)
	held      []atomic.Bool // per partition: owned here, not applied (Hold)
	releasing []atomic.Bool // per partition: Release asked to end the hold at the next rewind
	rewind    chan struct{} // Release: start again from the store's sequences

	restored atomic.Bool
	records  atomic.Uint64 // checkpoint records committed
	panes    atomic.Uint64 // panes written
	corrupt  atomic.Uint64 // messages that did not decode (logged, skipped)
	position atomic.Uint64 // changelog sequence processed up to (metrics.go)
	head     atomic.Uint64 // the changelog's last sequence, as of the last read
	received atomic.Uint64 // messages consumers delivered (resets the retry backoff)
	restarts [restartReasons]atomic.Uint64

	stallTimeout time.Duration  // stall.go; ≤ 0: no watchdog
	readers      sync.WaitGroup // a run's goroutines that may outlive a consume: reader, watchdog, iterator stop

	ownMu        sync.Mutex  // owners (owners.go), tails and probedHead (lag.go)
	owners       []partOwner // per partition: its last checkpoint record as read
	ownerChanges atomic.Uint64
	tails        []uint64 // per partition: its last record's sequence, as of the last probe
	probedHead   uint64   // the changelog's last sequence at the last probe

	unregister func() // the metrics' (WithRegisterer); nil without
	closeOnce  sync.Once
}

type paneID struct {
	key   string
	start int64
}

// ChunkPanes is how many collected panes of one partition the mirror
// holds before it writes them ahead of their checkpoint record.
const ChunkPanes = 1000

// NewMirror returns the mirror of changelog cl into store, where partition
// p is store stream sids[p]. It reads each partition's applied sequence
// from the store, and the changelog's last sequence (for the metrics;
// best effort). Options: WithRegisterer (metrics.go), WithStallTimeout
// (stall.go).
func NewMirror(ctx context.Context, js jetstream.JetStream, cl Changelog, sids []uint32, store ChangelogStore, log *slog.Logger, opts ...MirrorOption) (*Mirror, error) {
	var cfg mirrorConfig
	for _, o := range opts {
		o(&cfg)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mirror{js: js, cl: cl, sids: sids, store: store, log: log.With("changelog", cl.Name()),
		applied: make([]uint64, len(sids)), pending: make([]map[paneID]sketchd.PaneRecord, len(sids)),
		marked: make([]bool, len(sids)), held: make([]atomic.Bool, len(sids)), releasing: make([]atomic.Bool, len(sids)), rewind: make(chan struct{}, 1),
		owners: make([]partOwner, len(sids)), tails: make([]uint64, len(sids)), stallTimeout: cfg.stallTimeout}
	if m.stallTimeout == 0 {
		m.stallTimeout = DefaultStallTimeout
	}
	for p, sid := range sids {
		seq, _, err := store.ChangelogSeq(ctx, sid)
		if err != nil {
			return nil, fmt.Errorf("cluster: mirror of %s, partition %d: %w", cl.Stream, p, err)
		}
		m.applied[p] = seq
		m.pending[p] = map[paneID]sketchd.PaneRecord{}
	}
	if err := m.loadMarks(ctx); err != nil {
		return nil, err
	}
	m.position.Store(m.start() - 1)
	// A first guess of the head, best effort and bounded: an unanswered
	// stream info would otherwise wait for ctx's deadline (two minutes of
	// TestMirrorFollows on a loaded machine); the mirror's run reads it.
	hctx, cancel := context.WithTimeout(ctx, adminAttempt)
	if s, err := js.Stream(hctx, cl.Name()); err == nil {
		m.head.Store(s.CachedInfo().State.LastSeq)
	}
	cancel()
	if cfg.reg != nil {
		if err := m.register(cfg.reg); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Restored reports whether the mirror has once caught up with the head
// of the changelog: before that, a fresh restore is inconsistent (a
// superseded pane is missing until its newer version arrives).
func (m *Mirror) Restored() bool { return m.restored.Load() }

// MirrorStats count what a mirror did.
type MirrorStats struct {
	Records, Panes, Corrupt uint64
}

// Stats returns the mirror's counters.
func (m *Mirror) Stats() MirrorStats {
	return MirrorStats{Records: m.records.Load(), Panes: m.panes.Load(), Corrupt: m.corrupt.Load()}
}

// Applied returns the changelog sequence partition p last committed.
// Only the goroutine running the mirror may call it.
func (m *Mirror) Applied(p int) uint64 { return m.applied[p] }

// CatchUp applies the changelog up to its head as of the call, then
// returns; the mirror is Restored after the first that succeeds.
func (m *Mirror) CatchUp(ctx context.Context) error { return m.run(ctx, false) }

// Run applies the changelog until ctx is done (then returns nil), marking
// the mirror Restored once it reaches the head. Reading the changelog
// failing (the consumer's create, its iterator ending) is logged, counted
// (sketchd_mirror_restarts_total{reason="error"}) and retried with
// backoff, from the store's applied sequences; so is a consumer that
// stalled (stall.go). The store failing, the changelog deleted or the
// NATS connection closed end it; the caller may run it again, and it
// resumes after what was committed.
func (m *Mirror) Run(ctx context.Context) error { return m.run(ctx, true) }

// delivery is one result of the iterator's Next.
type delivery struct {
	msg jetstream.Msg
	err error
}

// changelogInfo returns the changelog's stream and its info. The info
// can go unanswered for a moment (its leader changing, a cluster just
// started: TestMirrorFollows on a loaded machine), so it is asked again
// like an admin request.
func (m *Mirror) changelogInfo(ctx context.Context) (jetstream.Stream, *jetstream.StreamInfo, error) {
	var s jetstream.Stream
	var info *jetstream.StreamInfo
	err := retryAdmin(ctx, func(ctx context.Context) error {
		var err error
		if s, err = m.js.Stream(ctx, m.cl.Name()); err == nil {
			info, err = s.Info(ctx)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errReading, err)
	}
	return s, info, nil
}

// messagesFrom returns the changelog's messages from sequence start, read
// by an ordered consumer (an ephemeral one: an orphan of a lost answer
// expires).
func (m *Mirror) messagesFrom(ctx context.Context, start uint64) (jetstream.MessagesContext, error) {
	var cons jetstream.Consumer
	err := retryAdmin(ctx, func(ctx context.Context) error {
		var err error
		cons, err = m.js.OrderedConsumer(ctx, m.cl.Name(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{m.cl.Subjects()},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    start,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: consumer: %w", errReading, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, fmt.Errorf("%w: consumer: %w", errReading, err)
	}
	return it, nil
}

// consume reads from the first unapplied sequence to the head (follow:
// on, until ctx is done), or until Release asks for a rewind or the
// watchdog finds the consumer stalled. The iterator's Next runs in a
// reader goroutine, so that consume can leave at once: nats.go's Next
// (and Stop) can block for as long as the ordered consumer retries a
// create (stall.go); the iterator is stopped in the background, and the
// run waits for it before it returns.
func (m *Mirror) consume(ctx context.Context, follow bool) error {
	s, info, err := m.changelogInfo(ctx)
	if err != nil {
		return err
	}
	start := m.start()
	head := info.State.LastSeq
	m.position.Store(start - 1)
	m.head.Store(head)
	m.loadOwners(ctx, s) // owners.go
	if head < start {
		if err := m.setRestored(ctx); err != nil || !follow {
			return err
		}
	} else if err := m.markFresh(ctx, head); err != nil { // restoring.go
		return err
	}
	it, err := m.messagesFrom(ctx, start)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	defer m.readers.Go(it.Stop)
	var waiting atomic.Bool
	msgs := m.read(it, done)
	stalled := m.watchStall(ctx, s, &waiting, done) // stall.go
	for {
		select { // a Release's rewind before the next message
		case <-m.rewind:
			return errRewind
		default:
		}
		var d delivery
		waiting.Store(true)
		select {
		case d = <-msgs:
		case <-ctx.Done():
			return m.ended(ctx, follow)
		case <-m.rewind:
			return errRewind
		case <-stalled:
			return errStalled
		}
		waiting.Store(false)
		if d.err != nil {
			return fmt.Errorf("%w: %w", errReading, d.err)
		}
		m.received.Add(1)
		meta, err := d.msg.Metadata()
		if err != nil {
			return fmt.Errorf("%w: %w", errReading, err)
		}
		if err := m.apply(ctx, d.msg.Subject(), d.msg.Data(), meta.Sequence.Stream); err != nil {
			return err
		}
		m.position.Store(meta.Sequence.Stream)
		m.head.Store(max(meta.Sequence.Stream+meta.NumPending, m.head.Load()))
		if m.reachedHead(ctx, meta.Sequence.Stream, meta.NumPending, &head) {
			if err := m.setRestored(ctx); err != nil {
				return err
			}
			if !follow {
				return nil
			}
		}
	}
}

// reachedHead reports whether the message at seq, with pending more
// after it as the consumer's server counts them, is the head a catch-up
// reads to. The head is the changelog's last sequence as its leader gave
// it, and a batch ends with its checkpoint record, which never expires,
// so the head is a message the consumer delivers; but the ordered
// consumer is R1 on any of the changelog's replicas, which may be behind
// the leader and count 0 pending short of the head (TestMirrorOwners in
// CI: a catch-up returned with a just-acknowledged commit unread). So 0
// pending short of the head is checked with the leader's last message on
// the changelog's subjects: at or before seq, the messages up to the head
// are gone (caught up, and processed up to the head); after it, the head becomes that message's
// sequence and the catch-up waits for it. The leader unreachable, the
// consumer's count is trusted, as before the check.
func (m *Mirror) reachedHead(ctx context.Context, seq, pending uint64, head *uint64) bool {
	switch {
	case seq >= *head:
		return true
	case pending > 0:
		return false
	}
	last, err := leaderLast(ctx, m.js, m.cl.Name(), m.cl.Subjects())
	switch {
	case ctx.Err() != nil:
		return false // the run ends at its next wait
	case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
		m.log.Warn("changelog head not confirmed by its leader; taking the consumer's count", "seq", seq, "err", err)
		return true
	case err != nil || last.Sequence <= seq: // gone: processed
		m.position.Store(*head)
		return true
	}
	*head = last.Sequence
	m.raiseHead(last.Sequence)
	return false
}

// read runs the iterator's Next in a goroutine of the mirror's (readers)
// and hands each result over, until one is an error or done closes.
func (m *Mirror) read(it jetstream.MessagesContext, done <-chan struct{}) <-chan delivery {
	out := make(chan delivery)
	m.readers.Go(func() {
		for {
			msg, err := it.Next()
			select {
			case out <- delivery{msg, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	})
	return out
}

// reload ends the holds that Release asked to end, then takes every
// partition's applied sequence from the store again (an owner's local
// commits moved it) and drops what was collected.
func (m *Mirror) reload(ctx context.Context) error {
	for p := range m.sids {
		if m.releasing[p].Swap(false) {
			m.held[p].Store(false)
		}
	}
	for p, sid := range m.sids {
		seq, _, err := m.store.ChangelogSeq(ctx, sid)
		if err != nil {
			return fmt.Errorf("cluster: mirror of %s, partition %d: %w", m.cl.Stream, p, err)
		}
		m.applied[p] = seq
		clear(m.pending[p])
	}
	return nil
}

// Hold stops applying partition p: this instance owns it, and its
// committer (ChangelogCommitter) writes the store. A claimant calls it
// once the mirror has applied p up to the record its claim is fenced on
// (an apply of that record still under way writes what the claim resumes
// from). Safe from any goroutine.
func (m *Mirror) Hold(p int) {
	m.releasing[p].Store(false)
	m.held[p].Store(true)
}

// Release resumes applying partition p, which this instance no longer
// owns. The mirror rewinds to the first sequence its store has not
// applied, and the hold ends there (not before: panes dropped while held
// must not be missing from a record applied after), so a batch the owner
// got into the changelog but not into its own store (a local commit that
// failed before the partition was lost) is applied too. Safe from any
// goroutine; it takes effect when the mirror runs.
func (m *Mirror) Release(p int) {
	m.releasing[p].Store(true)
	select {
	case m.rewind <- struct{}{}:
	default: // a rewind is pending already
	}
}

// start is the first changelog sequence some partition has not applied.
func (m *Mirror) start() uint64 {
	low := uint64(0)
	for i, a := range m.applied {
		if i == 0 || a < low {
			low = a
		}
	}
	return low + 1
}

// apply takes one changelog message at sequence seq.
func (m *Mirror) apply(ctx context.Context, subject string, data []byte, seq uint64) error {
	p, isRecord, err := m.cl.parseSubject(subject)
	if err == nil && p >= len(m.sids) {
		err = fmt.Errorf("%w: partition %d of %d", ErrCorruptRecord, p, len(m.sids))
	}
	if err != nil {
		return m.skip(subject, seq, err)
	}
	var rec Record
	var recErr error
	if isRecord { // every record, held or applied already: owners.go
		if rec, recErr = decodeRecord(data); recErr == nil {
			m.noteRecord(p, seq, &rec)
		}
	}
	if seq <= m.applied[p] {
		return nil
	}
	if m.held[p].Load() {
		clear(m.pending[p])
		return nil
	}
	if !isRecord {
		pane, err := decodePane(data)
		if err == nil && !strings.HasSuffix(subject, "."+keyHash(pane.Key)) {
			err = fmt.Errorf("%w: key does not hash to the subject", ErrCorruptRecord)
		}
		if err != nil {
			return m.skip(subject, seq, err)
		}
		m.pending[p][paneID{pane.Key, pane.Start}] = pane
		if len(m.pending[p]) >= ChunkPanes {
			return m.flushPanes(ctx, p)
		}
		return nil
	}
	if recErr != nil {
		return m.skip(subject, seq, recErr)
	}
	// The partition's owner may have committed this record (or a later
	// one) locally since the mirror started: its panes are newer.
	if cur, _, err := m.store.ChangelogSeq(ctx, m.sids[p]); err == nil && cur >= seq {
		m.applied[p] = cur
		clear(m.pending[p])
		return nil
	}
	f := sketchd.Flush{Panes: m.take(p), Checkpoint: rec.Checkpoint}
	if err := m.store.CommitChangelog(ctx, m.sids[p], f, seq); err != nil {
		return fmt.Errorf("cluster: mirror of partition %d at %d: %w", p, seq, err)
	}
	m.applied[p] = seq
	m.records.Add(1)
	m.panes.Add(uint64(len(f.Panes)))
	return nil
}

// flushPanes writes p's collected panes ahead of their record.
func (m *Mirror) flushPanes(ctx context.Context, p int) error {
	panes := m.take(p)
	if err := m.store.ApplyPanes(ctx, m.sids[p], panes); err != nil {
		return fmt.Errorf("cluster: mirror of partition %d: %w", p, err)
	}
	m.panes.Add(uint64(len(panes)))
	return nil
}

// take empties p's collected panes.
func (m *Mirror) take(p int) []sketchd.PaneRecord {
	out := make([]sketchd.PaneRecord, 0, len(m.pending[p]))
	for _, pane := range m.pending[p] {
		out = append(out, pane)
	}
	clear(m.pending[p])
	return out
}

// skip logs and counts a message that does not decode; the mirror goes on
// (one bad message must not stop every partition's replication).
// A pass that reads the message again (the next starts at the lowest
// partition's applied sequence) neither counts nor logs it again.
func (m *Mirror) skip(subject string, seq uint64, err error) error {
	if seq <= m.lastSkipped {
		return nil
	}
	m.lastSkipped = seq
	m.corrupt.Add(1)
	m.log.Error("changelog message skipped", "subject", subject, "seq", seq, "err", err)
	return nil
}
