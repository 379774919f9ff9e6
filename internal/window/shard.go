package window

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// shard owns the panes of the keys that hash to it. Only its goroutine
// touches its fields.
type shard struct {
	agg  *Aggregator
	plan *plan
	in   chan shardMsg

	groups  map[int64]map[string]*pane // pane start -> key -> pane
	starts  []int64                    // keys of groups, ascending
	dirty   []*pane                    // panes that became dirty since the last flush
	out     map[paneKey]sketchd.PaneRecord
	open    int
	maxOpen int
	wm      int64
	rng     uint64 // reservoir tags for events without a position
}

type shardMsg struct {
	mem     *batchMem // a batch's items, shared by the shards: read only; release when applied
	idx     []int32   // the indexes of mem.items this shard applies, in order
	wm      int64
	barrier chan<- []sketchd.PaneRecord
	gen     uint64 // the flush generation of the barrier
}

func (s *shard) run() {
	defer s.agg.wg.Done()
	for msg := range s.in {
		if msg.mem != nil {
			for _, i := range msg.idx {
				s.apply(&msg.mem.items[i])
			}
			msg.mem.release()
		}
		if msg.wm > s.wm {
			s.wm = msg.wm
			s.finalize()
		}
		if s.open > s.maxOpen {
			s.evict()
		}
		if msg.barrier != nil {
			recs := s.flush()
			// The records leave this shard now: register them as
			// uncommitted before the next event, which may reload one
			// of them (an evicted pane) while the store does not have
			// it yet.
			s.agg.addUncommitted(recs, msg.gen)
			msg.barrier <- recs
		}
	}
}

func (s *shard) apply(it *item) {
	g := s.groups[it.start]
	if g == nil {
		g = map[string]*pane{}
		s.groups[it.start] = g
		i, _ := slices.BinarySearch(s.starts, it.start)
		s.starts = slices.Insert(s.starts, i, it.start)
	}
	p := g[it.key]
	if p == nil {
		p = s.load(it.key, it.start)
		if p == nil {
			return // aggregator closing
		}
		g[p.key] = p
		s.open++
		s.agg.open.Add(1)
	}
	if it.pos != 0 && it.pos <= p.applied {
		s.agg.skipped.Add(1) // replay of an event the stored pane already holds
		return
	}
	tag := s.tag(it.pos)
	wasDirty := p.dirty
	if err := p.apply(s.plan, it, tag); err != nil {
		s.agg.log.Error("apply event", "err", err, "key", p.key, "pane_start", p.start)
	}
	if !wasDirty {
		s.dirty = append(s.dirty, p)
	}
}

// tag returns the reservoir tag for an event: derived from its position when
// it has one, so a replay draws the same sample.
func (s *shard) tag(pos uint64) uint64 {
	if pos != 0 {
		return mix64(pos ^ s.plan.tagSeed)
	}
	s.rng += 0x9e3779b97f4a7c15
	return mix64(s.rng)
}

// load finds the state of a pane that is not in memory: a record waiting for
// this shard's next flush, one flushed but not yet committed (uncommitted),
// or the store.
// It returns a new pane when none exists, and nil only when the aggregator is
// closing while the store keeps failing.
func (s *shard) load(key string, start int64) *pane {
	k := paneKey{key, start}
	if r, ok := s.out[k]; ok {
		delete(s.out, k) // the reloaded pane supersedes it
		if p, err := paneFromRecord(s.plan, r); err == nil {
			p.dirty = true
			s.dirty = append(s.dirty, p)
			return p
		}
	}
	if r, ok := s.agg.uncommittedPane(k); ok {
		if p, err := paneFromRecord(s.plan, r); err == nil {
			return p
		}
	}
	backoff := 50 * time.Millisecond
	for {
		r, ok, err := s.agg.loader.Pane(context.Background(), key, start)
		if err == nil && ok {
			s.agg.loads.Add(1)
			p, derr := paneFromRecord(s.plan, r)
			if derr == nil {
				return p
			}
			// A stored pane that does not decode cannot be added to;
			// starting afresh would overwrite it. Keep it and log loudly:
			// the new events go to a fresh pane written over it only if
			// the operator removes the corrupt value.
			s.agg.log.Error("stored pane does not decode; starting an empty pane", "err", derr, "pane_start", start)
			break
		}
		if err == nil {
			break
		}
		s.agg.loadErrors.Add(1)
		s.agg.log.Warn("load pane failed; retrying", "err", err, "pane_start", start, "backoff", backoff)
		select {
		case <-s.agg.done:
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	return &pane{key: strings.Clone(key), start: start, sketches: make([]sketch.Sketch, len(s.plan.aggs))}
}

// finalize hands every pane the watermark has made final to the next flush
// and drops it from memory.
func (s *shard) finalize() {
	n := 0
	for n < len(s.starts) && s.plan.spec.PaneFinalAt(s.starts[n], s.wm) {
		s.retire(s.starts[n], true)
		n++
	}
	s.starts = s.starts[n:]
}

// evict retires the oldest panes until the shard is at 90% of its cap.
func (s *shard) evict() {
	target := s.maxOpen * 9 / 10
	n := 0
	for n < len(s.starts) && s.open > target {
		c := len(s.groups[s.starts[n]])
		s.retire(s.starts[n], false)
		s.agg.evictedEarly.Add(uint64(c))
		n++
	}
	s.starts = s.starts[n:]
	s.agg.log.Warn("open-pane cap reached; evicted the oldest panes early", "open", s.open, "cap", s.maxOpen)
}

// retire moves the panes starting at start out of memory, recording the
// dirty ones for the next flush.
func (s *shard) retire(start int64, final bool) {
	for _, p := range s.groups[start] {
		if p.dirty {
			s.record(p, final)
		}
		s.open--
		s.agg.open.Add(-1)
	}
	delete(s.groups, start)
}

func (s *shard) record(p *pane, final bool) {
	r, err := p.record(s.plan, final)
	if err != nil {
		s.agg.log.Error("encode pane", "err", err, "pane_start", p.start)
		return
	}
	s.out[paneKey{p.key, p.start}] = r
	p.dirty = false
}

// flush returns the records of every pane changed since the last flush.
func (s *shard) flush() []sketchd.PaneRecord {
	for _, p := range s.dirty {
		if p.dirty {
			s.record(p, false)
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	recs := make([]sketchd.PaneRecord, 0, len(s.out))
	for _, r := range s.out {
		recs = append(recs, r)
	}
	// A Go map keeps its buckets when emptied: after a burst of evictions
	// (a key explosion) it would hold memory sized by the burst, not by the
	// open-pane cap. Start afresh after a large flush.
	if len(s.out) > shrinkAbove {
		s.out = map[paneKey]sketchd.PaneRecord{}
	} else {
		clear(s.out)
	}
	if cap(s.dirty) > shrinkAbove {
		s.dirty = nil
	}
	return recs
}

// shrinkAbove is the size past which an emptied map or slice is dropped
// rather than cleared.
const shrinkAbove = 4096
