package window

import (
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// A pane read back under a slot layout (an alter added and removed
// aggregates) decodes whatever number of blobs it holds: a missing or
// empty slot is an aggregate without values, blobs of retired slots or
// past the layout are dropped; writing it back gives the full layout, with
// a zero-length blob in the retired slot.
func TestPaneSlots(t *testing.T) {
	s := sketchd.DefaultStream()
	s.Name, s.Subject = "slots", "ev.slots"
	s.Aggregates = map[string]sketchd.Aggregate{
		"a": {Sketch: sketchd.KindHLL, Field: "a"},
		"c": {Sketch: sketchd.KindHLL, Field: "c"},
	}
	s.Slots = []string{"a", "", "c"} // b removed, c added
	s.Normalize()
	pl, err := compile(s)
	if err != nil {
		t.Fatal(err)
	}
	hll := func(items ...string) []byte {
		sk, err := sketch.New(sketch.Params{Kind: sketch.KindHLL, Precision: sketchd.DefaultPrecision})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if err := sketch.Add(sk, []byte(it), 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		b, err := sk.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name     string
		sketches [][]byte
		wantA    uint64 // values added to a
	}{
		{"written before any alter (a, b)", [][]byte{hll("x", "y"), hll("z")}, 2},
		{"no blobs", nil, 0},
		{"more blobs than the layout", [][]byte{hll("x"), hll("q"), hll("r"), hll("s")}, 1},
		{"empty a", [][]byte{{}, {}, hll("r")}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := paneFromRecord(pl, sketchd.PaneRecord{Key: "k", Start: int64(time.Minute), Sketches: c.sketches})
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.record(pl, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Sketches) != 3 || len(r.Sketches[1]) != 0 || len(r.Sketches[0]) == 0 || len(r.Sketches[2]) == 0 {
				t.Fatalf("record: blob lengths %d, want 3 slots with the retired one empty", len(r.Sketches))
			}
			a, err := sketchd.DecodeSketch(r.Sketches[0], sketch.KindHLL)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Count(); got != c.wantA {
				t.Errorf("a holds %d values, want %d", got, c.wantA)
			}
		})
	}
}
