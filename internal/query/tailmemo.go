package query

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/heapsize"
	"github.com/sketchd/sketchd/sketch"
)

// The open tail: a key's panes that are not final at the target's
// watermark (from the first pane start that is not final on). Every
// distinct question after a commit reads them from the store, since the
// pane cache keeps final panes only: a dashboard of 200 panels over 180
// keys sought each key's tail in Badger once per panel and commit, through
// every level of the LSM tree (a seek positions one iterator per table
// that may hold the key), and decoded it again. That was most of the CPU
// of the query load after the caches of final data (docs/benchmarks.md).
//
// tailMemo keeps, for the stream's last commit only, each key's tail read
// by a query: its whole panes (every aggregate's sketch, as stored: one
// read for all the aggregates a dashboard asks about, where a read per
// aggregate decompressed the same Badger blocks again for each), each
// slot decoded the first time a question asks for it. The questions of
// one commit share one read. Its content is what a store read at or after
// that commit returned (Target.LastCommit: the panes change only with a
// commit), so an answer built from it is one the store could have given
// for that target, and a commit, a Forget or a newer watermark starts it
// over. A caller that has seen a newer state than its target's (the
// emitter reading the store's checkpoint) asks with LastCommit 0, which
// reads the store itself. The sketches are shared and only read, like the
// pane cache's (winAcc clones before merging).

// tailMemo is the memo of one Querier.
type tailMemo struct {
	mu      sync.Mutex
	max     int64                 // bytes kept per stream, over its states (tailBytes); ≤ 0: off
	streams map[uint32][]*tailSet // newest first, at most tailStates
	refused int64                 // tails not kept for the budget (read again by the next question)
}

// stats returns the bytes the memo holds over all streams and states,
// and the tails it refused for its budget so far.
func (m *tailMemo) stats() (bytes, refused int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sets := range m.streams {
		for _, s := range sets {
			bytes += s.bytes
		}
	}
	return bytes, m.refused
}

// tailStates is how many recent states of a stream the memo keeps: when
// the questions take longer than the time between commits, those of the
// previous states still share their reads (with one state kept, every
// question of an older state read every tail again: at the tail start's
// minute move that re-read 279 MB in 5 s of the runner's vegeta phase,
// which made the questions slower still).
const tailStates = 3

// tailSet is the memo of one stream at one state.
type tailSet struct {
	gen       uint64
	commit    int64 // Target.LastCommit
	watermark int64
	bytes     int64
	tails     map[string]*tail         // by key
	reading   map[string]chan struct{} // tails a question is reading now
}

// tail is the panes of one key whose start is in [from, to), in start
// order; from is the first start that is not final.
type tail struct {
	from, to int64
	panes    []sketchd.PaneRecord // every slot's blob, as stored
	size     int64                // counted in tailSet.bytes
	// given marks the panes a newer state's tail shares (readTails) and
	// counts instead of this one (tailMemo.store); under tailMemo.mu.
	given []bool

	mu      sync.Mutex
	decoded map[tailSlot]sketch.Sketch // shared, read only
	// prev is the key's tail of an older state of the memo, when one was
	// kept: a pane whose blob is the same as there takes its decoded
	// sketch (reuse). Only one state back (prev's own prev is cut).
	prev *tail
}

type tailSlot struct {
	pane, slot int
}

// sketch returns pane i's sketch of aggregate a, decoded once.
func (t *tail) sketch(i int, a aggregate) (sketch.Sketch, error) {
	k := tailSlot{i, a.index}
	t.mu.Lock()
	defer t.mu.Unlock()
	if sk, ok := t.decoded[k]; ok {
		return sk, nil
	}
	blob := sketchd.SlotBlob(&t.panes[i], a.index)
	sk := t.prev.decodedAs(t.panes[i].Start, a.index, blob)
	if sk == nil {
		var err error
		if sk, err = a.decode(blob); err != nil {
			return nil, err
		}
	}
	if t.decoded == nil {
		t.decoded = map[tailSlot]sketch.Sketch{}
	}
	t.decoded[k] = sk
	return sk, nil
}

// The panes of a tail that did not change since the previous commit: with
// a commit a second, a key's open panes but the newest (the minute before,
// open for the allowed lateness after the watermark passed it) mostly get
// nothing new, yet every commit decoded them again for every aggregate a
// dashboard asks (a count-min's exact items into a map: most of a top-k
// panel's fresh answer after the merges). A new state's tail of a key is
// read from the store as before, and a pane's sketch is taken from the
// previous state's tail when the stored blob is the same bytes (equal
// bytes decode to equal sketches, and the decoded sketches are shared and
// only read), else decoded. An encoding need not be canonical for this
// (axiomhq's HLL writes its temporary set in map order): a pane whose
// unchanged state was encoded to other bytes is only decoded again.

// decodedAs returns t's decoded sketch of slot in the pane starting at
// start when its blob equals blob, else nil (t nil: none).
func (t *tail) decodedAs(start int64, slot int, blob []byte) sketch.Sketch {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.panes {
		if t.panes[i].Start != start {
			continue
		}
		sk, ok := t.decoded[tailSlot{i, slot}]
		if ok && bytes.Equal(sketchd.SlotBlob(&t.panes[i], slot), blob) {
			return sk
		}
		return nil
	}
	return nil
}

// previous returns the key's tail in the newest state of p's stream kept
// other than p's, or nil; its own link to an older state is cut, so the
// tails chain one state back at most.
func (m *tailMemo) previous(p *plan, key string) *tail {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.otherState(p, key)
	if old != nil {
		old.mu.Lock()
		old.prev = nil
		old.mu.Unlock()
	}
	return old
}

// otherState returns key's tail in the newest state of p's stream kept
// other than p's own (of p's generation), or nil. m.mu is held.
func (m *tailMemo) otherState(p *plan, key string) *tail {
	t := p.target
	for _, s := range m.streams[t.ID] {
		if s.gen != p.gen || (s.commit == t.LastCommit && s.watermark == t.Watermark) {
			continue
		}
		return s.tails[key]
	}
	return nil
}

// tailSpan is how far past a query's range a miss reads, so that the
// questions asked later in the same commit, whose ranges end later (now
// moves on), still find their tail: a seek past a key's last pane costs
// one seek per partition.
const tailSpan = int64(time.Hour)

func newTailMemo(max int64) *tailMemo {
	return &tailMemo{max: max, streams: map[uint32][]*tailSet{}}
}

// tailFrom returns the first pane start that is not final at the
// target's watermark (edgeFrom), and whether p may use the memo: a target
// without a commit has no state to key it by.
func (p *plan) tailFrom() (int64, bool) {
	if p.target.LastCommit == 0 {
		return 0, false
	}
	return p.edgeFrom()
}

// edgeFrom returns the first pane start that is not final at the target's
// watermark (PaneFinalAt: start + granularity > FinalEnd(watermark)), and
// whether it is known: a stream read over partitions
// merges whole panes from partitions whose watermarks differ, and a
// target without a watermark has none.
func (p *plan) edgeFrom() (int64, bool) {
	t := &p.target
	if len(t.Partitions) > 0 || t.Watermark < math.MinInt64/2 {
		return 0, false
	}
	gran := int64(t.Spec.Granularity)
	last := t.Spec.FinalEnd(t.Watermark) - gran // the last final start
	from := floorDiv(last, gran)*gran + gran
	if !t.Spec.PaneFinalAt(from-gran, t.Watermark) || t.Spec.PaneFinalAt(from, t.Watermark) {
		return 0, false // not representable: leave it to the store
	}
	return from, true
}

// claim sorts keys for p's read of [from, to): the tails the memo holds
// (hits), the keys another question is reading now (wait: closed when it
// is done), and the others, which p reads itself (mine); while p reads
// them, the memo marks them read under done, which p closes by release.
// With no memo for p's state, every key is p's, unmarked.
func (m *tailMemo) claim(p *plan, keys []string, from, to int64, done chan struct{}) (hits map[string]*tail, mine []string, wait map[string]chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set(p, true)
	if s == nil {
		return nil, keys, nil
	}
	for _, k := range keys {
		key := k
		if t := s.tails[k]; t != nil && from >= t.from && to <= t.to {
			if hits == nil {
				hits = map[string]*tail{}
			}
			hits[key] = t
			continue
		}
		if ch := s.reading[k]; ch != nil {
			if wait == nil {
				wait = map[string]chan struct{}{}
			}
			wait[key] = ch
			continue
		}
		s.reading[k] = done
		mine = append(mine, key)
	}
	return hits, mine, wait
}

// release unmarks the keys p claimed under done and wakes the questions
// waiting for them.
func (m *tailMemo) release(p *plan, keys []string, done chan struct{}) {
	m.mu.Lock()
	if s := m.set(p, false); s != nil {
		for _, k := range keys {
			if s.reading[k] == done {
				delete(s.reading, k)
			}
		}
	}
	m.mu.Unlock()
	close(done)
}

// lookup returns the memo's tail of key for p covering [from, to), or nil.
func (m *tailMemo) lookup(p *plan, key string, from, to int64) *tail {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set(p, false)
	if s == nil {
		return nil
	}
	t := s.tails[key]
	if t == nil || from < t.from || to > t.to {
		return nil
	}
	return t
}

// store keeps t for key, unless the memo moved to a newer state since the
// read or would grow past its budget.
//
// A pane t shares with an older state's tail of the key (the very
// record: readTails) is counted by t, the newer, and no longer by the
// older, which the memo lets go of first: the memo counts what it holds
// once (a tail stored into an older state than its previous tail's, by a
// question slower than the commits, counts its shared panes again). Counted twice, the newest state's first tails made the memo drop
// the previous state at a commit's first questions, and the keys read
// after that found nothing to share.
func (m *tailMemo) store(p *plan, key string, t *tail) {
	size := tailBytes(key, t)
	t.mu.Lock()
	prev := t.prev
	t.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set(p, true)
	if s == nil {
		return
	}
	from, shared, moved := m.holder(p.target.ID, key, prev), []int(nil), int64(0)
	if m.older(p.target.ID, from, s) { // a slow question's tail of an older state takes nothing
		shared, moved = sharedPanes(t, prev)
	}
	if !m.makeRoom(p.target.ID, s, size-moved) {
		m.refused++
		return
	}
	if moved > 0 && m.holder(p.target.ID, key, prev) == nil { // makeRoom dropped its state
		if moved = 0; !m.makeRoom(p.target.ID, s, size) {
			m.refused++
			return
		}
	}
	k := key
	if old := s.tails[k]; old != nil {
		if old.to >= t.to {
			return // a concurrent query read as much first
		}
		s.bytes -= old.size
	}
	t.size = size
	if sets := m.streams[p.target.ID]; sets[len(sets)-1] == s {
		// Stored into the oldest kept state after an older one was
		// dropped (set): let go of that one's tail too (tail.prev).
		t.mu.Lock()
		t.prev = nil
		t.mu.Unlock()
	}
	s.tails[k] = t
	s.bytes += size
	if moved > 0 {
		prev.give(shared, moved)
		from.bytes -= moved
	}
}

// give marks t's panes idx as counted by a newer tail, which counts
// their bytes instead. tailMemo.mu is held.
func (t *tail) give(idx []int, bytes int64) {
	if t.given == nil {
		t.given = make([]bool, len(t.panes))
	}
	for _, i := range idx {
		t.given[i] = true
	}
	t.size -= bytes
}

// holder returns the kept state of stream id whose tail of key is t, or
// nil. m.mu is held.
func (m *tailMemo) holder(id uint32, key string, t *tail) *tailSet {
	if t == nil {
		return nil
	}
	for _, s := range m.streams[id] {
		if s.tails[key] == t {
			return s
		}
	}
	return nil
}

// older reports whether a and b are kept states of stream id and a is
// the older (the memo lets go of it first). m.mu is held.
func (m *tailMemo) older(id uint32, a, b *tailSet) bool {
	ia, ib := -1, -1
	for i, s := range m.streams[id] { // newest first
		switch s {
		case a:
			ia = i
		case b:
			ib = i
		}
	}
	return ia >= 0 && ib >= 0 && ia > ib
}

// sharedPanes returns the panes of prev that t shares (the same record:
// their slots at the same address) and that prev has not given to another
// tail yet, and what prev counts of them. tailMemo.mu is held.
func sharedPanes(t, prev *tail) (idx []int, bytes int64) {
	for i := range prev.panes {
		if prev.given != nil && prev.given[i] {
			continue
		}
		q := t.pane(prev.panes[i].Start)
		if q != nil && len(q.Sketches) > 0 && unsafe.SliceData(q.Sketches) == unsafe.SliceData(prev.panes[i].Sketches) {
			idx = append(idx, i)
			bytes += paneBytes(&prev.panes[i])
		}
	}
	return idx, bytes
}

// makeRoom drops the stream's oldest states, never s nor one newer than
// s, until size more bytes fit in its budget, and reports whether they
// do. The newest state's tails are the ones the next questions ask for:
// with the budget split evenly between the states (a third each), the
// load runner's k6 phase refused 16,295 tails in 30 s, each read from the
// store and decoded again by the next question.
func (m *tailMemo) makeRoom(id uint32, s *tailSet, size int64) bool {
	sets := m.streams[id]
	total := int64(0)
	for _, o := range sets {
		total += o.bytes
	}
	for total+size > m.max && len(sets) > 1 && sets[len(sets)-1] != s {
		total -= sets[len(sets)-1].bytes
		sets = dropOldest(sets)
	}
	m.streams[id] = sets
	return total+size <= m.max
}

// dropOldest returns sets without its oldest state, whose tails the new
// oldest state's let go of (tail.prev), so the memo holds no more than
// the states it keeps.
func dropOldest(sets []*tailSet) []*tailSet {
	sets = sets[:len(sets)-1]
	for _, t := range sets[len(sets)-1].tails {
		t.mu.Lock()
		t.prev = nil
		t.mu.Unlock()
	}
	return sets
}

// tailBytes is the heap t holds in the memo for key: the tail, its
// panes and their blobs (each pane's value as read, its slice of slots),
// and each blob decoded: about twice its bytes and 256 more (decoded small
// sketches are mostly their fixed parts: TestTailMemoHoldsItsBudget).
func tailBytes(key string, t *tail) int64 {
	n := int64(len(key)) + heapsize.MapEntry(unsafe.Sizeof(*t), unsafe.Sizeof("")+unsafe.Sizeof(t)) +
		heapsize.Class(int64(unsafe.Sizeof(sketchd.PaneRecord{}))*int64(cap(t.panes)))
	for i := range t.panes {
		n += paneBytes(&t.panes[i])
	}
	return n
}

// paneBytes is the part of tailBytes of one pane: its blobs, their slice
// and key, and each blob decoded.
func paneBytes(r *sketchd.PaneRecord) int64 {
	var n, blobs int64
	for _, b := range r.Sketches {
		blobs += int64(len(b))
		if len(b) > 0 {
			n += 2*int64(len(b)) + 256 + (int64(unsafe.Sizeof(tailSlot{})+unsafe.Sizeof(sketch.Sketch(nil)))+1)*3/2
		}
	}
	return n + heapsize.Class(blobs) + heapsize.Class(int64(len(r.Key))) + heapsize.Class(int64(unsafe.Sizeof([]byte(nil)))*int64(len(r.Sketches)))
}

// set returns the stream's memo for p's state (create: a new one when it
// has none, dropping the oldest beyond tailStates); nil when the memo is
// off, or p's state is not kept and create is false.
func (m *tailMemo) set(p *plan, create bool) *tailSet {
	if m.max <= 0 {
		return nil
	}
	t := p.target
	sets := m.streams[t.ID]
	for _, s := range sets {
		if s.gen == p.gen && s.commit == t.LastCommit && s.watermark == t.Watermark {
			return s
		}
	}
	if !create {
		return nil
	}
	s := &tailSet{gen: p.gen, commit: t.LastCommit, watermark: t.Watermark, tails: map[string]*tail{}, reading: map[string]chan struct{}{}}
	sets = append([]*tailSet{s}, sets...)
	if len(sets) > tailStates {
		sets = dropOldest(sets)
	}
	m.streams[t.ID] = sets
	return s
}

// forget drops the memo of stream id.
func (m *tailMemo) forget(id uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.streams, id)
}

// scanTails gives the panes of keys in [from, to), all of them in the
// open tail (from ≥ p.tailFrom()), to their windows: from the memo where it
// holds a key's tail; for the keys another question is reading, from its
// read once done; and for the others from one store read of their tails,
// which the memo then keeps. Open panes stand in no rollup block and no
// ragged end, so they go straight to their windows.
func (q *Querier) scanTails(ctx context.Context, p *plan, w *windows, tailFrom int64, keys []string, from, to int64) error {
	if from < tailFrom {
		return fmt.Errorf("open tail read from %d, before its first pane %d", from, tailFrom)
	}
	done := make(chan struct{})
	hits, mine, wait := q.tails.claim(p, keys, from, to, done)
	var err error
	for key, t := range hits {
		if err = q.addTail(p, w, key, t, from, to); err != nil {
			break
		}
	}
	if err == nil {
		err = q.readTails(ctx, p, w, tailFrom, mine, from, to)
	}
	q.tails.release(p, mine, done) // on every path: others wait for it
	if err != nil || len(wait) == 0 {
		return err
	}
	var again []string // the other question's read failed, or was shorter
	for key, ch := range wait {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if t := q.tails.lookup(p, key, from, to); t != nil {
			if err := q.addTail(p, w, key, t, from, to); err != nil {
				return err
			}
		} else {
			again = append(again, key)
		}
	}
	return q.readTails(ctx, p, w, tailFrom, again, from, to)
}

// readTails reads the whole panes of keys' tails from the store, from
// tailFrom to an hour past to (tailSpan), gives their panes in [from, to)
// to their windows, and keeps them in the memo.
func (q *Querier) readTails(ctx context.Context, p *plan, w *windows, tailFrom int64, keys []string, from, to int64) error {
	if len(keys) == 0 {
		return nil
	}
	hi := to
	if to < math.MaxInt64-tailSpan {
		hi = to + tailSpan
	}
	prevs := make(map[string]*tail, len(keys))
	for _, key := range keys {
		if t := q.tails.previous(p, key); t != nil {
			prevs[key] = t
		}
	}
	read := map[string]*tail{}
	err := q.scanReusing(ctx, p.target, keys, tailFrom, hi, prevs, func(r sketchd.PaneRecord) error {
		t := read[r.Key]
		if t == nil {
			t = &tail{from: tailFrom, to: hi, prev: prevs[r.Key]}
			read[r.Key] = t
		}
		t.panes = append(t.panes, r)
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range keys {
		t := read[key]
		if t == nil {
			t = &tail{from: tailFrom, to: hi} // no open pane: that is worth keeping too
		}
		if err := q.addTail(p, w, key, t, from, to); err != nil {
			return err
		}
		q.tails.store(p, key, t)
	}
	return nil
}

// reusingReader is a PaneReader that can give a caller's own records of
// unchanged open panes back instead of copies (store.DB).
type reusingReader interface {
	ScanPanesReusing(ctx context.Context, streamID uint32, keys []string, from, to int64, reuse func(key string, start int64) *sketchd.PaneRecord, fn func(sketchd.PaneRecord) error) error
}

// scanReusing reads keys' panes in [from, to) as ScanPanes does, but an
// open pane that is the same as in the key's tail in prevs (the previous
// state's) is that tail's record, shared (tails are only read), not a new
// copy, where the reader can do it.
func (q *Querier) scanReusing(ctx context.Context, t Target, keys []string, from, to int64, prevs map[string]*tail, fn func(sketchd.PaneRecord) error) error {
	r := q.reader(t)
	rr, ok := r.(reusingReader)
	if !ok || len(prevs) == 0 {
		return r.ScanPanes(ctx, t.ID, keys, from, to, fn)
	}
	return rr.ScanPanesReusing(ctx, t.ID, keys, from, to, func(key string, start int64) *sketchd.PaneRecord {
		return prevs[key].pane(start)
	}, fn)
}

// pane returns t's record of the pane at start, or nil (t nil: none). A
// tail's panes do not change once the memo holds it.
func (t *tail) pane(start int64) *sketchd.PaneRecord {
	if t == nil {
		return nil
	}
	for i := range t.panes {
		if t.panes[i].Start == start {
			return &t.panes[i]
		}
	}
	return nil
}

// addTail gives the panes of t in [from, to) to key's windows, each
// decoded for p's aggregate (once per tail).
func (q *Querier) addTail(p *plan, w *windows, key string, t *tail, from, to int64) error {
	ki := p.keyIndex[key]
	for i := range t.panes {
		r := &t.panes[i]
		if r.Start < from || r.Start >= to {
			continue
		}
		sk, err := t.sketch(i, p.agg)
		if err != nil {
			return fmt.Errorf("pane %d of key %q: %w", r.Start, r.Key, err)
		}
		q.sizes.observe(p.target.ID, p.agg.index, len(sketchd.SlotBlob(r, p.agg.index)))
		w.panes++
		w.add(ki, r.Start, cached{sk: sk, events: r.Events, panes: 1})
	}
	return nil
}
