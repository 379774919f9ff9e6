package window

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/sketchd/sketchd"
)

// Batch is a run of input in source order: the events and the invalid input
// of one or more messages. The aggregator processes a batch atomically with
// respect to flushes, so a checkpoint never splits it. A Batch copies what it
// is given, except what RetainRaw lets it keep. Process takes its events
// (the batch then has none: Len is 0); Reset it before adding the next.
type Batch struct {
	// Now is the processing time (unix ns) at which the batch arrived.
	Now int64
	// Position is the highest source position the batch covers, including
	// invalid input (0 when the source has no positions).
	Position uint64
	// Token is opaque to the window and handed back in the flush that
	// covers the batch (sketchd.Flush.Token): ingest acks with it.
	Token any
	// RetainRaw says that the memory of every added event's Raw is never
	// written again (a NATS message's payload, which the client allocates
	// for each message): Add then keeps the value bytes that lie inside
	// Raw instead of copying them. The shards may read them until the
	// events are applied. Reset keeps it.
	RetainRaw bool

	items   []item
	invalid []string
	bytes   chunks[byte]
	values  chunks[sketchd.Value]
	// hint is the number of events of the batch before the last Reset:
	// the first Add sizes items and values for as many, so that a steady
	// stream of full batches allocates each once, not by doubling.
	hint int
}

// item is one event copied into a batch.
type item struct {
	key    string // the event's key (a string: immutable, so not copied)
	t      int64
	pos    uint64
	start  int64 // pane start, set by Process
	idx    int32 // index in the batch, for rejections
	values []sketchd.Value
}

// batchMem is the memory a processed batch's events live in: its items
// and the last chunks of its values and bytes. Process hands it to the
// shards it routes items to; the last holder done with it puts it in
// memPool, and a later batch's first Add takes it from there, so a steady
// stream of batches does not allocate (and clear, and have the GC scan)
// ~230 bytes per event.
type batchMem struct {
	items  []item
	bytes  []byte
	values []sketchd.Value
	refs   atomic.Int32 // holders: Process while dispatching, and each shard sent items
}

// memPool holds batchMems no shard reads any more.
var memPool sync.Pool

// release drops one holder's reference.
func (m *batchMem) release() {
	if m.refs.Add(-1) == 0 {
		memPool.Put(m)
	}
}

// takeMem moves the batch's memory into a batchMem for the shards: the
// batch no longer uses it (Reset follows Process).
func (b *Batch) takeMem() *batchMem {
	m := &batchMem{items: b.items, values: b.values.cur, bytes: b.bytes.cur}
	b.hint = len(b.items)
	b.items, b.values.cur, b.bytes.cur = nil, nil, nil
	return m
}

// reuse starts the batch's memory from a released batchMem, if any.
func (b *Batch) reuse() bool {
	m, _ := memPool.Get().(*batchMem)
	if m == nil || cap(m.items) == 0 {
		return false
	}
	b.items, b.values.cur, b.bytes.cur = m.items[:0], m.values[:0], m.bytes[:0]
	return true
}

// maxBatchHint bounds the events a batch reserves room for up front.
const maxBatchHint = 8192

// Add copies ev into the batch and returns its index.
func (b *Batch) Add(ev *sketchd.Event) int {
	if b.items == nil && !b.reuse() {
		n := min(max(b.hint, 1), maxBatchHint)
		b.items = make([]item, 0, n)
		b.values.reserve(n * len(ev.Values))
	}
	vals := b.values.take(len(ev.Values))
	for i, v := range ev.Values {
		vals[i] = v
		if len(v.Bytes) > 0 && !(b.RetainRaw && within(v.Bytes, ev.Raw)) {
			vals[i].Bytes = b.bytes.copy(v.Bytes)
		}
	}
	b.items = append(b.items, item{
		key:    ev.Key,
		t:      ev.Time,
		pos:    ev.Pos,
		idx:    int32(len(b.items)),
		values: vals,
	})
	return len(b.items) - 1
}

// within reports whether the non-empty s lies inside outer.
func within(s, outer []byte) bool {
	if len(outer) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(outer))
}

// AddInvalid counts one rejected input by reason.
func (b *Batch) AddInvalid(reason string) { b.invalid = append(b.invalid, reason) }

// Len returns the number of events in the batch.
func (b *Batch) Len() int { return len(b.items) }

// Reset empties the batch for reuse, keeping RetainRaw. Memory handed to
// the aggregator is not reused here: it belongs to the shards until they
// are done with it (batchMem).
func (b *Batch) Reset() {
	hint := b.hint
	if b.items != nil {
		hint = len(b.items)
	}
	*b = Batch{RetainRaw: b.RetainRaw, hint: hint}
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

// reserve makes room for n elements in the current chunk, when it is
// empty.
func (c *chunks[T]) reserve(n int) {
	if len(c.cur) == 0 && cap(c.cur) < n {
		c.cur = make([]T, 0, n)
	}
}

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
