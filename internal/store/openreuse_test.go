package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/sketchd/sketchd"
)

// TestScanPanesReusing: a scan given the records of an earlier one gives
// back those very records for the open panes whose stored values they
// still hold, and new copies, equal to a plain scan's, for the panes a
// commit changed since and for records that differ from the stored pane
// in any field or sketch byte (a reuse offered wrongly is not taken).
func TestScanPanesReusing(t *testing.T) {
	for _, n := range []int{openWalkMin + 4, 3} { // keys: the open family walked, and sought key by key
		t.Run(fmt.Sprintf("keys=%d", n), func(t *testing.T) { testScanPanesReusing(t, n) })
	}
}

func testScanPanesReusing(t *testing.T, n int) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "reuse", time.Minute).ID
	var keys []string
	var ps []sketchd.PaneRecord
	for k := range n {
		keys = append(keys, fmt.Sprintf("key-%02d", k))
		for m := range 2 {
			ps = append(ps, pane(keys[k], int64(60+m)*minute, uint64(2*k+m+1), blob(uint64(2*k+m), 300), blob(uint64(100+k), 40)))
		}
	}
	commitWM(t, db, sid, 61*minute, ps...) // both minutes open
	scan := func(reuse func(string, int64) *sketchd.PaneRecord) map[string]*sketchd.PaneRecord {
		t.Helper()
		out := map[string]*sketchd.PaneRecord{}
		fn := func(r sketchd.PaneRecord) error {
			out[fmt.Sprint(r.Key, r.Start)] = &r
			return nil
		}
		var err error
		if reuse == nil {
			err = db.ScanPanes(t.Context(), sid, keys, 0, 120*minute, fn)
		} else {
			err = db.ScanPanesReusing(t.Context(), sid, keys, 0, 120*minute, reuse, fn)
		}
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := scan(nil)
	// Key 0's newer pane changes; key 1's records are offered with a
	// different event count and a different byte in one sketch.
	changed := ps[1]
	changed.Applied, changed.Events = 1000, 3000
	changed.Sketches = [][]byte{blob(7, 300), changed.Sketches[1]}
	commitWM(t, db, sid, 61*minute, changed)
	offered := map[string]*sketchd.PaneRecord{}
	for id, r := range first {
		offered[id] = r
	}
	for i, start := range []int64{60 * minute, 61 * minute} {
		id := fmt.Sprint(keys[1], start)
		r := *offered[id]
		if i == 0 {
			r.Events++
		} else {
			r.Sketches = slices.Clone(r.Sketches)
			r.Sketches[1] = slices.Clone(r.Sketches[1])
			r.Sketches[1][5] ^= 1
		}
		offered[id] = &r
	}
	got := scan(func(key string, start int64) *sketchd.PaneRecord { return offered[fmt.Sprint(key, start)] })
	want := scan(nil)
	if len(got) != len(want) || len(got) != len(ps) {
		t.Fatalf("%d panes reusing, %d without, want %d", len(got), len(want), len(ps))
	}
	for id, w := range want {
		g := got[id]
		if g == nil {
			t.Fatalf("pane %q: missing from the scan reusing", id)
		}
		if g.Key != w.Key || g.Start != w.Start || g.Events != w.Events || g.Applied != w.Applied || g.Final != w.Final || !slices.EqualFunc(g.Sketches, w.Sketches, slices.Equal) {
			t.Fatalf("pane %q: reusing gave another pane than a plain scan (events %d / %d, applied %d / %d, same sketches %v)",
				id, g.Events, w.Events, g.Applied, w.Applied, slices.EqualFunc(g.Sketches, w.Sketches, slices.Equal))
		}
		shared := unsafe.SliceData(g.Sketches) == unsafe.SliceData(offered[id].Sketches)
		if fresh := id == fmt.Sprint(keys[0], 61*minute) || g.Key == keys[1]; shared == fresh {
			t.Errorf("pane %q: shared %v, want %v", id, shared, !fresh)
		}
	}
}
