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
	"sync"
	"time"
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

// countGap counts the messages between want and seq that are no longer in
// the JetStream stream (its limits removed them): they are lost to sketchd.
// On an unpartitioned stream the count is exact for a stream of one
// subject; on a partitioned one it is an upper bound on the partition's
// loss (the removed messages' subjects are gone with them).
func (r *runner) countGap(want, seq uint64) {
	first, at := r.consumer.first.get()
	if want >= first && time.Since(at) >= firstSeqMinAge {
		ctx, cancel := context.WithTimeout(r.life.run, 2*time.Second)
		r.refreshFirstSeq(ctx)
		cancel()
		first, _ = r.consumer.first.get()
	}
	if want >= first {
		return
	}
	n := min(first, seq) - want
	r.consumer.gapped.Add(n)
	r.log.Warn("JetStream messages missing before this one (removed by the stream's limits?)",
		"expected_seq", want, "seq", seq, "missing", n, "first_seq", first)
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
