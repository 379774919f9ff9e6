package sketchd

import (
	"fmt"
	"slices"
	"time"
)

// MaxSlots bounds a stream's slot layout (live and retired aggregates):
// every removed aggregate keeps its slot for good, so the layout only
// grows; an alter that would pass this is refused.
const MaxSlots = 256

// SlotNames returns the stream's pane slot layout: the aggregate each
// position of PaneRecord.Sketches belongs to, "" for a retired slot (an
// aggregate an alter removed). A stream never altered has no Slots and
// its layout is AggregateNames. Positions never shift: an alter retires
// the slots of the aggregates it removes and appends the ones it adds, so
// a pane written before it still reads right (a missing trailing slot is
// an aggregate added after the pane was written: empty).
func (s *Stream) SlotNames() []string {
	if s.Slots == nil {
		return s.AggregateNames()
	}
	return slices.Clone(s.Slots)
}

// Slot returns the position of aggregate name in the slot layout.
func (s *Stream) Slot(name string) (int, bool) {
	if _, ok := s.Aggregates[name]; !ok {
		return 0, false
	}
	if s.Slots == nil {
		return slices.BinarySearch(s.AggregateNames(), name)
	}
	i := slices.Index(s.Slots, name)
	return i, i >= 0
}

// SlotBlob returns the blob of slot i of p, or nil when p has none (a pane
// written before the slot's aggregate was added). A nil or zero-length
// blob means "no value": read it as an empty sketch.
func SlotBlob(p *PaneRecord, i int) []byte {
	if i < 0 || i >= len(p.Sketches) {
		return nil
	}
	return p.Sketches[i]
}

// validateSlots checks Slots against Aggregates: each aggregate in exactly
// one slot, every named slot a live aggregate.
func (s *Stream) validateSlots(bad func(field, format string, args ...any)) {
	if s.Slots == nil {
		return
	}
	if len(s.Slots) > MaxSlots {
		bad("slots", "at most %d slots (live and removed aggregates), got %d: create a new stream", MaxSlots, len(s.Slots))
	}
	seen := map[string]bool{}
	for i, n := range s.Slots {
		if n == "" {
			continue
		}
		if _, ok := s.Aggregates[n]; !ok {
			bad(fmt.Sprintf("slots[%d]", i), "names %q, which is not an aggregate of the stream (a removed aggregate's slot is \"\")", n)
		}
		if seen[n] {
			bad(fmt.Sprintf("slots[%d]", i), "aggregate %q has two slots", n)
		}
		seen[n] = true
	}
	for _, n := range s.AggregateNames() {
		if !seen[n] {
			bad("slots", "aggregate %q has no slot", n)
		}
	}
}

// addSlots returns the layout after an alter that removes the aggregates
// in removed and appends those in added (sorted): removed slots are
// retired (""), never reused, so re-adding a name later starts empty.
func addSlots(cur []string, removed, added []string) []string {
	out := slices.Clone(cur)
	for i, n := range out {
		if slices.Contains(removed, n) {
			out[i] = ""
		}
	}
	return append(out, added...)
}

// sinceOf is the first pane start at which an aggregate added now is
// complete, given the highest event time the stream has applied
// (maxEventTime): the start of the first pane that begins after it. Every
// event of that pane or a later one is applied after the alter. It is nil
// when the stream has applied no event (the aggregate covers everything).
func sinceOf(maxEventTime int64, g Duration) *time.Time {
	if maxEventTime == NoTime {
		return nil
	}
	t := time.Unix(0, PaneStart(maxEventTime, int64(g))+int64(g)).UTC()
	return &t
}

// BackfillStatus is the progress of a backfill (PATCH with "backfill":
// true): the replay of the stream's JetStream stream, from its first
// sequence up to the last one applied before the alter (To), into the
// aggregates the alter added, and only them.
type BackfillStatus struct {
	Aggregates []string `json:"aggregates"`
	// From and To are the stream sequences to replay, [From, To]; Done is
	// the last one applied and committed (From-1 before the first step).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	Done uint64 `json:"done"`
	// Events counts the events replayed into the aggregates so far.
	Events uint64 `json:"events"`
	// Covers is the since the aggregates get when the backfill completes:
	// nil when JetStream still held the stream's first event (complete),
	// else a pane start from the first replayed event's time on which no
	// aged-out event can fall (see docs/api.md).
	Covers *time.Time `json:"covers,omitempty"`
	// State is "running", "done" or "failed" (see Error).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}
