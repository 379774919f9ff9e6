package sketchd

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Adding, removing and re-adding aggregates: positions never shift, a
// removed slot is never reused, and since is set only when the alter takes
// effect.
func TestApplyAggregatesSlots(t *testing.T) {
	s := DefaultStream()
	s.Name, s.Subject = "sl", "ev.sl"
	s.Aggregates = map[string]Aggregate{"b": {Sketch: KindHLL, Field: "b"}, "a": {Sketch: KindHLL, Field: "a"}}
	s.Normalize()
	hll := func(f string) *Aggregate { return &Aggregate{Sketch: KindHLL, Field: f} }
	steps := []struct {
		patch map[string]*Aggregate
		slots []string
	}{
		{map[string]*Aggregate{"c": hll("c"), "a": nil}, []string{"", "b", "c"}},
		{map[string]*Aggregate{"a": hll("a")}, []string{"", "b", "c", "a"}},
		{map[string]*Aggregate{"b": hll("b")}, []string{"", "b", "c", "a"}}, // unchanged: no change
	}
	for i, st := range steps {
		next, changes, err := s.Apply(StreamAlter{Aggregates: st.patch})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !slices.Equal(next.SlotNames(), st.slots) {
			t.Errorf("step %d: slots %q, want %q (changes %q)", i, next.SlotNames(), st.slots, changes)
		}
		for n := range next.Aggregates {
			if slot, ok := next.Slot(n); !ok || next.SlotNames()[slot] != n {
				t.Errorf("step %d: Slot(%q) = %d %v", i, n, slot, ok)
			}
			if next.Aggregates[n].Since != nil {
				t.Errorf("step %d: %s has a since before the alter took effect", i, n)
			}
		}
		s = next
	}
	s.StartAggregates([]string{"a"}, time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC).UnixNano())
	if got := s.Aggregates["a"].Since; got == nil || !got.Equal(time.Date(2026, 1, 1, 10, 1, 0, 0, time.UTC)) {
		t.Errorf("since %v, want the pane after the max event time (10:01)", got)
	}
	s.StartAggregates([]string{"c"}, NoTime)
	if got := s.Aggregates["c"].Since; got != nil {
		t.Errorf("since %v for a stream that saw no event, want none", got)
	}
}

// Validate refuses a slot layout that does not match the aggregates.
func TestValidateSlots(t *testing.T) {
	for _, slots := range [][]string{{"a"}, {"a", "b", "a"}, {"a", "b", "x"}, make([]string, MaxSlots+1)} {
		s := DefaultStream()
		s.Name, s.Subject = "sl", "ev.sl"
		s.Aggregates = map[string]Aggregate{"a": {Sketch: KindHLL, Field: "a"}, "b": {Sketch: KindHLL, Field: "b"}}
		s.Slots = slots
		s.Normalize()
		var fe *FieldError
		if err := s.Validate(); !errors.As(err, &fe) {
			t.Errorf("slots %q: %v, want a field error", slots[:min(len(slots), 4)], err)
		}
	}
}
