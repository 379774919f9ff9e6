package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// Writer appends one partition's commits to its changelog, as its owner.
// Every commit is one or more atomic batches, each ending with the
// partition's checkpoint record fenced on the sequence of the record
// before it (Nats-Expected-Last-Subject-Sequence): a writer whose
// partition was claimed by another instance since its last commit has its
// batch rejected whole (ErrFenced). A Writer is used by one goroutine (the
// partition's committer).
type Writer struct {
	nc    *nats.Conn
	js    jetstream.JetStream // reads the last checkpoint record (lastRecord)
	cl    Changelog
	part  int
	owner string
	spec  sketchd.Stream
	opts  Options
	now   func() time.Time

	epoch uint64 // the claim this writer commits under; 0 before Claim
	fence uint64 // changelog sequence of the partition's last checkpoint record
	last  Record // the last record that closed a flush (intermediate batches repeat it)
}

// Writer errors callers act on.
var (
	// ErrFenced: another instance claimed the partition; nothing of the
	// rejected batch was stored. The caller stops owning it.
	ErrFenced = errors.New("cluster: fenced: the partition has another owner")
	// ErrNotClaimed: Commit before Claim.
	ErrNotClaimed = errors.New("cluster: partition not claimed by this writer")
	// ErrPaneTooLarge: a pane does not fit the server's max_payload; the
	// flush is refused before anything is published.
	ErrPaneTooLarge = errors.New("cluster: pane larger than the NATS server's max_payload")
)

// FencedError says who holds the partition now.
type FencedError struct {
	Partition int
	Owner     string // "" when the checkpoint record is gone
	Epoch     uint64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("cluster: partition %d fenced: owner is %q at epoch %d", e.Partition, e.Owner, e.Epoch)
}

func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// headroom is what the batch and TTL headers may add to a pane's bytes:
// their names and values add up to under 200.
const headroom = 512

// NewWriter returns partition part's writer for instance owner: it
// publishes on nc, and reads the partition's last checkpoint record from
// the changelog's leader through js (usually nc's own; cl's stream must
// exist: EnsureChangelog); spec gives the panes' TTL (end + retention −
// now). o must be normalized.
func NewWriter(nc *nats.Conn, js jetstream.JetStream, cl Changelog, part int, owner string, spec sketchd.Stream, o Options) *Writer {
	return &Writer{nc: nc, js: js, cl: cl, part: part, owner: owner, spec: spec, opts: o, now: time.Now}
}

// Claim makes this writer the partition's owner: it appends a checkpoint
// record repeating the last one, with this owner and the next epoch,
// fenced on the last one's sequence (retried when another commit slips in
// between, and while the changelog does not answer: publishClaim; ctx
// bounds it). It returns the claimed record: the checkpoint the new owner
// resumes from (a zero checkpoint for a new partition). The caller must
// have applied the changelog up to that record before it ingests.
func (w *Writer) Claim(ctx context.Context) (Record, error) {
	for range 5 {
		prev, seq, _, err := w.lastRecord(ctx)
		if err != nil {
			return Record{}, err
		}
		next := prev
		next.Owner, next.Epoch, next.Last = w.owner, prev.Epoch+1, true
		next.CommittedAt = w.now().UnixNano()
		got, err := w.publishClaim(ctx, &next, seq)
		if isWrongLastSequence(err) {
			continue
		}
		if err != nil {
			return Record{}, err
		}
		w.epoch, w.fence, w.last = next.Epoch, got, next
		return next, nil
	}
	return Record{}, fmt.Errorf("cluster: claim of partition %d: the checkpoint kept moving", w.part)
}

// publishClaim publishes the claim record rec fenced on fence, sent again
// while an attempt goes unanswered, until ctx is done (publishResent).
// An unanswered attempt may have landed with its answer lost: the next
// one then fails its fence, and if the partition's last record is rec
// itself the claim is done, at that record's sequence. Any other wrong
// last sequence is returned (another commit or claim slipped in).
func (w *Writer) publishClaim(ctx context.Context, rec *Record, fence uint64) (uint64, error) {
	seq, lost, err := w.publishResent(ctx, nil, rec, fence, time.Time{})
	if !isWrongLastSequence(err) || !lost {
		return seq, err
	}
	last, at, found, gerr := w.lastRecord(ctx)
	if gerr != nil {
		return 0, gerr
	}
	if found && sameFlush(&last, rec) && last.CommittedAt == rec.CommittedAt {
		return at, nil
	}
	return 0, err
}

// publishResent publishes a batch (publish) and sends it again every
// 100 ms while an attempt goes unanswered: no responders, as while the
// changelog's leader is elected or before its interest reaches this
// server, or the attempt's timeout. It stops when ctx is done or, unless
// until is zero, once until has passed. lost reports an unanswered
// attempt: it may have landed, and a later one then fails its fence.
func (w *Writer) publishResent(ctx context.Context, panes []paneMsg, rec *Record, fence uint64, until time.Time) (seq uint64, lost bool, err error) {
	for {
		seq, err = w.publish(ctx, panes, rec, fence)
		if err == nil || ctx.Err() != nil || !unanswered(err) || (!until.IsZero() && time.Now().After(until)) {
			return seq, lost, err
		}
		lost = true
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return 0, lost, err
		}
	}
}

// unanswered: a publish got no answer (see retryable), or the request
// that opens a batch timed out.
func unanswered(err error) bool {
	return retryable(err) || errors.Is(err, nats.ErrTimeout)
}

// LastCheckpointSeq is the changelog sequence of the partition's last
// checkpoint record, as the changelog's leader has it; found is false when
// it has none. An unanswered read is sent again for a while (leaderLast).
func (w *Writer) LastCheckpointSeq(ctx context.Context) (seq uint64, found bool, err error) {
	_, seq, found, err = w.lastRecord(ctx)
	return seq, found, err
}

// Epoch is the claim the writer commits under (0 before Claim).
func (w *Writer) Epoch() uint64 { return w.epoch }

// Commit appends a flush: its panes in batches of at most MaxBatchMsgs
// messages and MaxBatchBytes, each closed by a fenced checkpoint record;
// intermediate batches repeat the previous checkpoint, the last carries
// f's. It returns the changelog sequence of f's checkpoint record.
//
// A rejected fence whose winner is this writer's own epoch is a batch
// that landed although its ack was lost (a timeout): it is adopted, and
// if it closed this very flush Commit returns its sequence without
// publishing again. A fence the server could not check yet, its subject
// busy with a batch still in process (errCodeWrongLastSequenceBusy), is
// read again after a moment the same way. Otherwise the error is a
// *FencedError (ErrFenced).
// A batch that goes unanswered is sent again for up to PublishTimeout
// (publishResent: a changelog electing its leader); past that the error
// (timeout, no quorum) leaves the outcome to the next Commit of the same
// or a folded flush.
func (w *Writer) Commit(ctx context.Context, f sketchd.Flush) (uint64, error) {
	if w.epoch == 0 {
		return 0, ErrNotClaimed
	}
	panes, err := w.paneMessages(f.Panes)
	if err != nil {
		return 0, err
	}
	final := Record{Checkpoint: f.Checkpoint, Owner: w.owner, Epoch: w.epoch, Gen: f.Gen, Last: true}
	for i := range commitAttempts {
		seq, err := w.commitBatches(ctx, panes, &final)
		if !isWrongLastSequence(err) {
			return seq, err
		}
		if wrongLastSequenceBusy(err) && !sleepCtx(ctx, time.Duration(i+1)*50*time.Millisecond) {
			return 0, ctx.Err()
		}
		rec, at, found, gerr := w.lastRecord(ctx)
		if gerr != nil {
			return 0, gerr
		}
		if !found || rec.Owner != w.owner || rec.Epoch != w.epoch {
			return 0, &FencedError{Partition: w.part, Owner: rec.Owner, Epoch: rec.Epoch}
		}
		w.fence = at // ours: a batch whose ack was lost landed
		if rec.Last {
			w.last = rec
			if sameFlush(&rec, &final) {
				return at, nil
			}
		}
	}
	return 0, fmt.Errorf("cluster: commit of partition %d: fence kept moving under its own owner", w.part)
}

// commitAttempts bounds Commit's re-reads of a failed fence: an own batch
// that landed unanswered, or a subject busy with one still in process.
const commitAttempts = 5

// paneMsg is a pane ready to publish.
type paneMsg struct {
	subject string
	ttl     string // "" = none
	body    []byte
}

// paneMessages encodes the panes and checks each against max_payload.
func (w *Writer) paneMessages(panes []sketchd.PaneRecord) ([]paneMsg, error) {
	maxPayload := w.nc.MaxPayload()
	now := w.now().UnixNano()
	out := make([]paneMsg, len(panes))
	for i := range panes {
		p := &panes[i]
		body := encodePane(p)
		if int64(len(body)+headroom) > maxPayload {
			return nil, fmt.Errorf("%w: pane %q at %s of stream %s is %d bytes, the server's max_payload is %d (raise it, up to 8 MiB, or lower the stream's sketch sizes)",
				ErrPaneTooLarge, p.Key, time.Unix(0, p.Start).UTC().Format(time.RFC3339), w.spec.Name, len(body), maxPayload)
		}
		out[i] = paneMsg{subject: w.cl.PaneSubject(w.part, p.Key, p.Start), ttl: w.ttl(p.Start, now), body: body}
	}
	return out, nil
}

// ttl is a pane's time to live: its end plus the retention, from now, at
// least 1s; "" when the stream keeps panes forever.
func (w *Writer) ttl(start, now int64) string {
	ret := int64(w.spec.Retention)
	if ret <= 0 {
		return ""
	}
	left := start + int64(w.spec.Granularity) + ret - now
	secs := max(left/int64(time.Second), 1)
	return strconv.FormatInt(secs, 10) + "s"
}

// commitBatches publishes the panes in batches, the last closed by final.
func (w *Writer) commitBatches(ctx context.Context, panes []paneMsg, final *Record) (uint64, error) {
	recBytes, err := encodeRecord(final)
	if err != nil {
		return 0, err
	}
	maxPanes := w.opts.MaxBatchMsgs - 1
	maxBytes := w.opts.MaxBatchBytes - len(recBytes) - headroom
	for len(panes) > 0 || final != nil {
		n, size := 0, 0
		for n < len(panes) && n < maxPanes && (n == 0 || size+len(panes[n].body)+headroom <= maxBytes) {
			size += len(panes[n].body) + headroom
			n++
		}
		rec := w.last // an intermediate batch claims nothing new
		rec.Owner, rec.Epoch, rec.Last = w.owner, w.epoch, false
		if n == len(panes) {
			rec = *final
			final = nil
		}
		rec.CommittedAt = w.now().UnixNano()
		seq, _, err := w.publishResent(ctx, panes[:n], &rec, w.fence, time.Now().Add(w.opts.PublishTimeout))
		if err != nil {
			return 0, err
		}
		w.fence = seq
		if rec.Last {
			w.last = rec
		}
		panes = panes[n:]
		if final == nil {
			return seq, nil
		}
	}
	return 0, nil
}

// publish sends panes and rec as one atomic batch, rec fenced on fence.
func (w *Writer) publish(ctx context.Context, panes []paneMsg, rec *Record, fence uint64) (uint64, error) {
	body, err := encodeRecord(rec)
	if err != nil {
		return 0, err
	}
	msgs := make([]*nats.Msg, 0, len(panes)+1)
	for _, p := range panes {
		m := &nats.Msg{Subject: p.subject, Data: p.body, Header: nats.Header{}}
		if p.ttl != "" {
			m.Header.Set(jetstream.MsgTTLHeader, p.ttl)
		}
		msgs = append(msgs, m)
	}
	m := &nats.Msg{Subject: w.cl.CheckpointSubject(w.part), Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(fence, 10))
	msgs = append(msgs, m)
	return publishAtomic(ctx, w.nc, msgs, w.opts.PublishTimeout)
}

// lastRecord reads the partition's last checkpoint record and its
// sequence, as the changelog's leader has it (leaderget.go); found is
// false (and the record zero) when there is none.
func (w *Writer) lastRecord(ctx context.Context) (rec Record, seq uint64, found bool, err error) {
	m, err := leaderLast(ctx, w.js, w.cl.Name(), w.cl.CheckpointSubject(w.part))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, 0, false, nil
	}
	if err != nil {
		return Record{}, 0, false, fmt.Errorf("cluster: partition %d checkpoint record: %w", w.part, err)
	}
	rec, err = decodeRecord(m.Data)
	if err != nil {
		return Record{}, 0, false, fmt.Errorf("partition %d at %d: %w", w.part, m.Sequence, err)
	}
	return rec, m.Sequence, true, nil
}

// sameFlush: a and b close the same flush (the committed-at times aside).
func sameFlush(a, b *Record) bool {
	if a.Gen != b.Gen || a.Last != b.Last || a.Owner != b.Owner || a.Epoch != b.Epoch {
		return false
	}
	ja, err1 := json.Marshal(a.Checkpoint)
	jb, err2 := json.Marshal(b.Checkpoint)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// specHeadroom is what a stream's pane bound must leave under max_payload
// in cluster mode: the pane header, the key's length prefix, batch and
// TTL headers.
const specHeadroom = 4 << 10

// CheckPaneFits refuses, in cluster mode, a stream whose largest possible
// pane (every aggregate at its encoding bound, the longest key) would not
// fit the NATS server's max_payload, so that no commit of it can ever be
// refused (ErrPaneTooLarge) after its events were accepted.
func CheckPaneFits(spec sketchd.Stream, maxPayload int64) error {
	bound := sketchd.MaxKeyLen + specHeadroom
	for _, name := range spec.AggregateNames() {
		bound += spec.Aggregates[name].MaxEncodedBytes() + 10
	}
	if int64(bound) > maxPayload {
		return fmt.Errorf("%w: stream %s: a pane can reach %d KiB with its sketches at their bounds, the server's max_payload is %d KiB: raise max_payload (up to 8 MiB) or shrink the aggregates",
			ErrPaneTooLarge, spec.Name, (bound+1023)>>10, maxPayload>>10)
	}
	return nil
}
