package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// scanSlot collects ScanTierPaneSlot's records of the base panes.
func scanSlot(t *testing.T, db *DB, sid uint32, keys []string, slot int) []sketchd.PaneRecord {
	t.Helper()
	var got []sketchd.PaneRecord
	err := db.ScanTierPaneSlot(t.Context(), sid, 0, keys, 0, day, slot, func(p sketchd.PaneRecord) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanTierPaneSlot(slot %d): %v", slot, err)
	}
	return got
}

// TestScanPaneSlot: a one-slot scan delivers the same panes as ScanPanes,
// each with the same header and the same bytes in its slot, no other blob,
// and Sketches cut after the slot (shorter for a pane that predates it).
// Its blobs are the caller's: writing into one changes neither the next
// scan's nor the other records' (no shared buffer, no aliasing of Badger's
// value), and a corrupt pane is refused whatever slot is read.
func TestScanPaneSlot(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "slots", time.Hour).ID
	var panes []sketchd.PaneRecord
	for h := range int64(6) {
		panes = append(panes, pane("a", h*hour, uint64(10+h), blob(uint64(h), 40), nil, blob(uint64(h+50), 300)))
	}
	panes = append(panes, pane("b", 0, 20, blob(99, 12))) // one slot: predates slots 1 and 2
	commit(t, db, sid, 30, panes...)

	var all []sketchd.PaneRecord
	if err := db.ScanPanes(t.Context(), sid, []string{"a", "b"}, 0, day, func(p sketchd.PaneRecord) error {
		all = append(all, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(panes) {
		t.Fatalf("ScanPanes: %d panes, want %d", len(all), len(panes))
	}
	for slot := range 4 {
		got := scanSlot(t, db, sid, []string{"a", "b"}, slot)
		if len(got) != len(all) {
			t.Fatalf("slot %d: %d panes, want %d", slot, len(got), len(all))
		}
		for i, g := range got {
			w := all[i]
			if g.Key != w.Key || g.Start != w.Start || g.Final != w.Final || g.Events != w.Events || g.Applied != w.Applied {
				t.Errorf("slot %d: pane %d is %s, want %s", slot, i, paneString(g), paneString(w))
			}
			if want := min(len(w.Sketches), slot+1); len(g.Sketches) != want {
				t.Errorf("slot %d: pane %s holds %d entries, want %d", slot, paneString(w), len(g.Sketches), want)
			}
			if !bytes.Equal(sketchd.SlotBlob(&g, slot), sketchd.SlotBlob(&w, slot)) {
				t.Errorf("slot %d: pane %s: blob differs from ScanPanes'", slot, paneString(w))
			}
			for j, b := range g.Sketches {
				if j != slot && b != nil {
					t.Errorf("slot %d: pane %s: slot %d copied (%d bytes)", slot, paneString(w), j, len(b))
				}
			}
		}
	}

	// The records' blobs are their own.
	got := scanSlot(t, db, sid, []string{"a"}, 2)
	want := bytes.Clone(got[1].Sketches[2])
	for i := range got[0].Sketches[2] {
		got[0].Sketches[2][i] ^= 0xff
	}
	got[0].Sketches[2] = append(got[0].Sketches[2], 1, 2, 3) // must not write into got[1]'s bytes
	if !bytes.Equal(got[1].Sketches[2], want) {
		t.Errorf("writing into one record's blob changed the next record's")
	}
	again := scanSlot(t, db, sid, []string{"a"}, 2)
	if !bytes.Equal(again[0].Sketches[2], all[0].Sketches[2]) {
		t.Errorf("writing into a record's blob changed the stored pane")
	}

	if err := db.ScanTierPaneSlot(t.Context(), sid, 0, []string{"a"}, 0, day, -1, func(sketchd.PaneRecord) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("slot -1: err = %v, want ErrInvalid", err)
	}

	// A corrupt pane (bad CRC) is refused for every slot, even one the
	// damaged bytes are not in.
	v := appendPaneValue(nil, &panes[0])
	v[len(v)-crcLen-1] ^= 1 // last byte of slot 2
	if err := db.rawSetPane(sid, "a", 0, v); err != nil {
		t.Fatal(err)
	}
	for slot := range 3 {
		t.Run(fmt.Sprint("corrupt/slot", slot), func(t *testing.T) {
			err := db.ScanTierPaneSlot(t.Context(), sid, 0, []string{"a"}, 0, day, slot, func(sketchd.PaneRecord) error { return nil })
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Errorf("err = %v, want a *CorruptError", err)
			}
		})
	}
}

// TestScanPaneSlotBorrowed: the borrowed one-slot scan delivers what
// ScanTierPaneSlot does (header, Sketches' length, the slot's bytes, no
// other blob), read inside fn; returns fn's error as is; refuses slot -1
// and a corrupt pane.
func TestScanPaneSlotBorrowed(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "borrowed", time.Hour).ID
	var panes []sketchd.PaneRecord
	for h := range int64(6) {
		panes = append(panes, pane("a", h*hour, uint64(10+h), blob(uint64(h), 40), nil, blob(uint64(h+50), 300)))
	}
	panes = append(panes, pane("b", 0, 20, blob(99, 12)))
	commit(t, db, sid, 30, panes...)
	for slot := range 4 {
		want := scanSlot(t, db, sid, []string{"a", "b"}, slot)
		var got []sketchd.PaneRecord
		err := db.ScanTierPaneSlotBorrowed(t.Context(), sid, 0, []string{"a", "b"}, 0, day, slot, func(p sketchd.PaneRecord) error {
			c := p
			c.Sketches = make([][]byte, len(p.Sketches))
			for i, b := range p.Sketches {
				if b != nil {
					c.Sketches[i] = bytes.Clone(b)
				}
			}
			got = append(got, c)
			return nil
		})
		if err != nil {
			t.Fatalf("slot %d: %v", slot, err)
		}
		if len(got) != len(want) {
			t.Fatalf("slot %d: %d panes, want %d", slot, len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			if paneString(g) != paneString(w) || g.Applied != w.Applied || len(g.Sketches) != len(w.Sketches) {
				t.Errorf("slot %d: pane %d is %s (%d entries), want %s (%d)", slot, i, paneString(g), len(g.Sketches), paneString(w), len(w.Sketches))
			}
			for j := range g.Sketches {
				if !bytes.Equal(g.Sketches[j], w.Sketches[j]) || (g.Sketches[j] == nil) != (w.Sketches[j] == nil) {
					t.Errorf("slot %d: pane %s: entry %d differs", slot, paneString(w), j)
				}
			}
		}
	}
	stop := errors.New("stop")
	if err := db.ScanTierPaneSlotBorrowed(t.Context(), sid, 0, []string{"a"}, 0, day, 0, func(sketchd.PaneRecord) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: got %v, want it as is", err)
	}
	if err := db.ScanTierPaneSlotBorrowed(t.Context(), sid, 0, []string{"a"}, 0, day, -1, func(sketchd.PaneRecord) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("slot -1: err = %v, want ErrInvalid", err)
	}
	v := appendPaneValue(nil, &panes[0])
	v[len(v)-crcLen-1] ^= 1
	if err := db.rawSetPane(sid, "a", 0, v); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if err := db.ScanTierPaneSlotBorrowed(t.Context(), sid, 0, []string{"a"}, 0, day, 0, func(sketchd.PaneRecord) error { return nil }); !errors.As(err, &ce) {
		t.Errorf("corrupt pane: err = %v, want a *CorruptError", err)
	}
}
