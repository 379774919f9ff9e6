package ingest

// Sequence gaps. A filtered consumer skips the sequences of other subjects
// (and, on a partitioned stream, of other partitions) legitimately: a jump
// from the sequence expected to a later one loses nothing unless the
// stream's limits removed messages before sketchd read them. Those are the
// messages below the stream's first sequence. The first sequence is cached:
// refreshed with the consumer's info, and on demand at most once a second,
// so a jump costs no JetStream request in the common case.

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// firstSeqMinAge is how old the cached first sequence may be before a jump
// refreshes it.
const firstSeqMinAge = time.Second

type firstSeqCache struct {
	mu  sync.Mutex
	seq uint64    // the stream's first sequence, as last read (0: never)
	at  time.Time // when it was read
}

func (f *firstSeqCache) get() (uint64, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq, f.at
}

func (f *firstSeqCache) set(seq uint64, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq, f.at = seq, at
}

// acceptJump decides a jump from the sequence expected (want) to a later
// one (seq) in a delivery that is not a redelivery. The messages of the
// jump that the stream's limits removed are counted lost (countGap) when
// the jump is accepted. A
// jump over messages of the consumer's filter still in the stream is never
// accepted: sketchd never received them, and a later AckAll would ack them
// as processed. Such a jump is a consumer positioned past its start (a reset
// in place that resumed later than asked), not a filtered gap; the caller
// resets the consumer at want instead.
//
// Which messages the jump skips is asked of the server (the next message
// of the filter at or after want) when the filter is the whole stream (a
// jump there is never legitimate unless limits or deletes removed the
// messages) and at the first delivery after positioning the consumer
// (dseq 1). A later jump on a filtered (partitioned) consumer is the
// server skipping other subjects in a gapless delivery sequence: accepted
// without a request, as every message would cost one.
func (r *runner) acceptJump(want, seq, dseq uint64) bool {
	from := r.firstInStream(want)
	if from < seq && (dseq == 1 || r.filterIsStream()) {
		next, err := r.nextOfFilter(from)
		switch {
		case err != nil:
			r.log.Warn("JetStream sequence jump not verified; resetting the consumer", "expected_seq", want, "seq", seq, "err", err)
			return false
		case next < seq:
			r.consumer.jumps.Add(1)
			r.log.Error("JetStream consumer skipped messages still in the stream; resetting it at the first sequence not received",
				"expected_seq", want, "seq", seq, "skipped_from", next, "delivery", dseq)
			return false
		}
	}
	r.countGap(want, seq, from)
	return true
}

// filterIsStream reports whether the consumer's filter is the JetStream
// stream's only subject: every message of the stream is the consumer's.
func (r *runner) filterIsStream() bool {
	s := r.consumer.jsStream
	if s == nil {
		return false
	}
	info := s.CachedInfo()
	if info == nil {
		return false
	}
	subj := info.Config.Subjects
	return len(subj) == 1 && subj[0] == r.filterSubject()
}

// nextOfFilter returns the sequence of the first message at or after seq
// that the consumer's filter matches, as the JetStream stream holds it now
// (math.MaxUint64: none).
func (r *runner) nextOfFilter(seq uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(r.life.run, 2*time.Second)
	defer cancel()
	m, err := r.consumer.jsStream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(r.filterSubject()))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return math.MaxUint64, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// firstInStream returns the first sequence from want on that the JetStream
// stream still holds (want, unless its limits removed messages since): the
// stream's first sequence, cached, refreshed at most once a second.
func (r *runner) firstInStream(want uint64) uint64 {
	first, at := r.consumer.first.get()
	if want >= first && time.Since(at) >= firstSeqMinAge {
		ctx, cancel := context.WithTimeout(r.life.run, 2*time.Second)
		r.refreshFirstSeq(ctx)
		cancel()
		first, _ = r.consumer.first.get()
	}
	return max(want, first)
}

// countGap counts the messages of an accepted jump from want to seq that
// are no longer in the JetStream stream (before from, the stream's first
// sequence: its limits removed them): they are lost to sketchd. On an
// unpartitioned stream the count is exact for a stream of one subject; on
// a partitioned one it is an upper bound on the partition's loss (the
// removed messages' subjects are gone with them).
func (r *runner) countGap(want, seq, from uint64) {
	if want >= from {
		return
	}
	n := min(from, seq) - want
	r.consumer.gapped.Add(n)
	r.log.Warn("JetStream messages missing before this one (removed by the stream's limits?)",
		"expected_seq", want, "seq", seq, "missing", n, "first_seq", from)
}

// refreshFirstSeq reads the JetStream stream's first sequence.
func (r *runner) refreshFirstSeq(ctx context.Context) {
	s := r.consumer.jsStream
	if s == nil {
		return
	}
	info, err := s.Info(ctx)
	if err != nil {
		return
	}
	r.consumer.first.set(info.State.FirstSeq, time.Now())
}
