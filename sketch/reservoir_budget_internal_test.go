package sketch

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// rawReservoir builds a reservoir state directly, bypassing Add (and so
// the budget), to write blobs that today's Add cannot produce: the blobs
// of a writer from before the budget, or corrupt ones.
func rawReservoir(k int, weighted bool, pop uint64, lens []int, cut *resEntry) *Reservoir {
	r := &Reservoir{k: k, weighted: weighted, pop: pop}
	for i, l := range lens {
		it := bytes.Repeat([]byte{byte('a' + i%26)}, l)
		e := resEntry{tag: uint64(i+1) << 20, item: it}
		if weighted {
			e.prio = float64(i + 1)
		}
		r.heap = append(r.heap, e)
		r.bytes += l
	}
	slices.Reverse(r.heap) // ascending → max-heap
	if cut != nil {
		r.hasCut, r.cut = true, *cut
	}
	return r
}

// TestReservoirDecodeBeforeBudget: a blob written before the byte budget
// (no cut, items over MaxReservoirBytes: ten of 50,000 bytes) decodes with
// the budget applied: its first five items (250,000 bytes), truncated,
// cut at the sixth; the population is unchanged. Within the budget, such a
// blob decodes exactly as before (the golden files check that).
func TestReservoirDecodeBeforeBudget(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		old := rawReservoir(10, weighted, 1234, slices.Repeat([]int{50000}, 10), nil)
		b, err := old.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		r := s.(*Reservoir)
		tags := r.Tags()
		if len(tags) != 5 || !r.Truncated() || r.Bytes() != 250000 || r.Population() != 1234 || tags[4] != 5<<20 || r.cut.tag != 6<<20 {
			t.Fatalf("weighted %v: %d items (%x), truncated %v, %d bytes, population %d, cut %x",
				weighted, len(tags), tags, r.Truncated(), r.Bytes(), r.Population(), r.cut.tag)
		}
		// Re-encoded, it is a canonical truncated blob.
		b2, _ := r.AppendBinary(nil)
		s2, err := Decode(b2)
		if err != nil {
			t.Fatal(err)
		}
		if b3, _ := s2.AppendBinary(nil); !bytes.Equal(b2, b3) {
			t.Fatal("not canonical")
		}
	}
}

// TestReservoirDecodeBadCut: blobs with a cut that no writer produces are
// ErrCorrupt.
func TestReservoirDecodeBadCut(t *testing.T) {
	above := func(i int, weighted bool) *resEntry {
		e := &resEntry{tag: uint64(i) << 20}
		if weighted {
			e.prio = float64(i)
		}
		return e
	}
	for _, weighted := range []bool{false, true} {
		cases := []struct {
			name string
			r    *Reservoir
		}{
			{"cut with k entries", rawReservoir(3, weighted, 10, []int{5, 5, 5}, above(4, weighted))},
			{"cut below the last entry", rawReservoir(5, weighted, 10, []int{5, 5, 5}, above(2, weighted))},
			{"cut equal to the last entry", rawReservoir(5, weighted, 10, []int{5, 5, 5}, above(3, weighted))},
			{"cut over the budget", rawReservoir(5, weighted, 10, []int{MaxReservoirBytes, 1}, above(3, weighted))},
			{"cut without a left-out item", rawReservoir(5, weighted, 3, []int{5, 5, 5}, above(4, weighted))},
		}
		if weighted {
			cases = append(cases, struct {
				name string
				r    *Reservoir
			}{"negative cut priority", rawReservoir(5, true, 10, nil, &resEntry{tag: 1, prio: -1})})
		}
		for _, c := range cases {
			b, err := c.r.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
				t.Errorf("weighted %v, %s: %v, want ErrCorrupt", weighted, c.name, err)
			}
		}
		// The same shapes with a valid cut decode.
		ok := rawReservoir(5, weighted, 10, []int{5, 5, 5}, above(4, weighted))
		b, _ := ok.AppendBinary(nil)
		if s, err := Decode(b); err != nil || !s.(*Reservoir).Truncated() {
			t.Errorf("weighted %v: valid cut: %v", weighted, err)
		}
		// Unweighted, fewer than k entries and fewer than n without a cut
		// is still corrupt (as before the budget).
		if !weighted {
			b, _ := rawReservoir(5, false, 10, []int{5, 5, 5}, nil).AppendBinary(nil)
			if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
				t.Errorf("short sample without a cut: %v", err)
			}
		}
	}
}
