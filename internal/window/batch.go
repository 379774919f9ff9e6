package window

import (
	"unsafe"

	"github.com/sketchd/sketchd"
)

// Batch is a run of input in source order: the events and the invalid input
// of one or more messages. The aggregator processes a batch atomically with
// respect to flushes, so a checkpoint never splits it. A Batch copies what it
// is given; it may be reused after Process returns (Reset).
type Batch struct {
	// Now is the processing time (unix ns) at which the batch arrived.
	Now int64
	// Position is the highest source position the batch covers, including
	// invalid input (0 when the source has no positions).
	Position uint64
	// Token is opaque to the window and handed back in the flush that
	// covers the batch (sketchd.Flush.Token): ingest acks with it.
	Token any

	items   []item
	invalid []string
	bytes   chunks[byte]
	values  chunks[sketchd.Value]
}

// item is one event copied into a batch.
type item struct {
	key    string // aliases the batch's byte chunks
	t      int64
	pos    uint64
	start  int64 // pane start, set by Process
	idx    int32 // index in the batch, for rejections
	values []sketchd.Value
}

// Add copies ev into the batch and returns its index.
func (b *Batch) Add(ev *sketchd.Event) int {
	vals := b.values.take(len(ev.Values))
	for i, v := range ev.Values {
		vals[i] = v
		if len(v.Bytes) > 0 {
			vals[i].Bytes = b.bytes.copy(v.Bytes)
		}
	}
	k := b.bytes.copy(unsafe.Slice(unsafe.StringData(ev.Key), len(ev.Key)))
	b.items = append(b.items, item{
		key:    unsafe.String(unsafe.SliceData(k), len(k)),
		t:      ev.Time,
		pos:    ev.Pos,
		idx:    int32(len(b.items)),
		values: vals,
	})
	return len(b.items) - 1
}

// AddInvalid counts one rejected input by reason.
func (b *Batch) AddInvalid(reason string) { b.invalid = append(b.invalid, reason) }

// Len returns the number of events in the batch.
func (b *Batch) Len() int { return len(b.items) }

// Reset empties the batch for reuse. Memory handed to the aggregator is not
// reused: it belongs to the shards until they are done with it.
func (b *Batch) Reset() {
	*b = Batch{}
}

// chunks is an append-only arena of chunks: slices it hands out never move,
// so they stay valid while later ones are taken. Chunks start small and
// double up to maxChunkLen, so that a small batch does not allocate (and
// clear) a large arena.
type chunks[T any] struct {
	cur []T
}

const (
	minChunkLen = 256
	maxChunkLen = 16 << 10
)

func (c *chunks[T]) take(n int) []T {
	if n == 0 {
		return nil
	}
	if cap(c.cur)-len(c.cur) < n {
		c.cur = make([]T, 0, max(n, min(maxChunkLen, max(minChunkLen, 2*cap(c.cur)))))
	}
	s := c.cur[len(c.cur) : len(c.cur)+n : len(c.cur)+n]
	c.cur = c.cur[:len(c.cur)+n]
	return s
}

func (c *chunks[T]) copy(src []T) []T {
	s := c.take(len(src))
	copy(s, src)
	return s
}
