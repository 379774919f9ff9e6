package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// openModel is what a store's base panes of one stream should read back:
// per key and start, the Applied of the last write (each write has its
// own, and its blob is blob(Applied)).
type openModel map[string]map[int64]uint64

func (m openModel) set(p sketchd.PaneRecord) {
	if m[p.Key] == nil {
		m[p.Key] = map[int64]uint64{}
	}
	m[p.Key][p.Start] = p.Applied
}

func modelPane(key string, start int64, applied uint64) sketchd.PaneRecord {
	return pane(key, start, applied, blob(applied, 40+int(applied%50)))
}

// scan renders the model's panes of keys in [from, to) as ScanPanes
// returns them.
func (m openModel) scan(keys []string, from, to int64) []string {
	var out []string
	for _, k := range keys {
		for _, s := range slices.Sorted(maps.Keys(m[k])) {
			if from <= s && s < to {
				out = append(out, fmt.Sprintf("%s@%d#%d", k, s, m[k][s]))
			}
		}
	}
	return out
}

// keys returns the model's keys with a pane in [from, to), sorted.
func (m openModel) keys(from, to int64) []string {
	var out []string
	for k, starts := range m {
		for s := range starts {
			if from <= s && s < to {
				out = append(out, k)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// openPaneIDs returns the key and start of the stream's panes the open
// family holds.
func openPaneIDs(t *testing.T, db *DB, sid uint32) []sketchd.PaneRecord {
	t.Helper()
	var out []sketchd.PaneRecord
	sp := baseSpace(sid, 0)
	err := db.open.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = sp.pane
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, k, s, _ := sp.parsePaneKey(it.Item().Key())
			out = append(out, sketchd.PaneRecord{Key: string(k), Start: s})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// openStarts returns the starts of the stream's panes the open family
// holds.
func openStarts(t *testing.T, db *DB, sid uint32) []int64 {
	t.Helper()
	var out []int64
	for _, p := range openPaneIDs(t, db, sid) {
		out = append(out, p.Start)
	}
	return out
}

// TestOpenFamilyModel drives one stream's base panes through commits
// (panes open and final, the watermark moving), ApplyPanes (no settle),
// UpdatePane, the two equal copies a crash inside a move leaves, and
// reopens, and checks after each step that ScanPanes (copied and
// borrowed), Pane and Keys read what was last written to each pane, over
// ranges that cut partitions (an hour wide here) and the open/settled
// boundary; and that a commit leaves no pane final under its watermark in
// the open family.
func TestOpenFamilyModel(t *testing.T) {
	testOpenFamilyModel(t, []string{"a", "b", "c", "d", "e"})
}

// TestOpenFamilyModelWalked is TestOpenFamilyModel with every scan reading
// the open family in one walk over the keys (openwalk.go), over 40 keys of
// lengths 1 to 3 (the walk's order is the pane keys': length, then
// bytes), most of them holding no open pane at a time (the walk steps over
// the others or seeks past them), some asked for twice in a scan.
func TestOpenFamilyModelWalked(t *testing.T) {
	old := openWalkMin
	openWalkMin = 1
	t.Cleanup(func() { openWalkMin = old })
	var keys []string
	for i := range 40 {
		keys = append(keys, strings.Repeat(string(rune('a'+i%26)), 1+i%3))
	}
	testOpenFamilyModel(t, keys)
}

func testOpenFamilyModel(t *testing.T, keys []string) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()
	o := quietOptions()
	o.PartitionSpan = time.Hour
	db, err := Open(dir, testLogger(t), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	info := createTest(t, db, "m", time.Minute)
	sid, spec := info.ID, info.Spec
	base := int64(time.Hour) - 20*minute // panes cross an hour's partition
	wm := base
	model := openModel{}
	applied := uint64(0)
	nextPane := func(lo, hi int64) sketchd.PaneRecord {
		applied++
		start := base + (lo+rng.Int64N(hi-lo+1))*minute
		return modelPane(keys[rng.IntN(len(keys))], start, applied)
	}
	lateness := int64(spec.AllowedLateness)
	check := func(step int, what string) {
		t.Helper()
		for range 4 {
			from := base + (rng.Int64N(50)-5)*minute
			to := from + (1+rng.Int64N(40))*minute
			ks := slices.Clone(keys)
			rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
			ks = ks[:1+rng.IntN(len(ks))]
			if rng.IntN(4) == 0 {
				ks = append(ks, ks[rng.IntN(len(ks))]) // a key asked for twice
			}
			var got []string
			err := db.ScanPanes(t.Context(), sid, ks, from, to, func(p sketchd.PaneRecord) error {
				if want := modelPane(p.Key, p.Start, p.Applied); !equalPane(p, want) {
					t.Errorf("step %d (%s): pane %s@%d differs from its write %d", step, what, p.Key, p.Start, p.Applied)
				}
				got = append(got, fmt.Sprintf("%s@%d#%d", p.Key, p.Start, p.Applied))
				return nil
			})
			if err != nil {
				t.Fatalf("step %d: ScanPanes: %v", step, err)
			}
			if want := model.scan(ks, from, to); !slices.Equal(got, want) {
				t.Fatalf("step %d (%s): ScanPanes(%q, %d, %d) =\n%q\nwant\n%q", step, what, ks, from, to, got, want)
			}
			var borrowed []string
			err = db.ScanTierPaneSlotBorrowed(t.Context(), sid, 0, ks, from, to, 0, func(p sketchd.PaneRecord) error {
				if !bytes.Equal(p.Sketches[0], blob(p.Applied, 40+int(p.Applied%50))) {
					t.Errorf("step %d (%s): borrowed blob of %s@%d differs", step, what, p.Key, p.Start)
				}
				borrowed = append(borrowed, fmt.Sprintf("%s@%d#%d", p.Key, p.Start, p.Applied))
				return nil
			})
			if err != nil {
				t.Fatalf("step %d: ScanTierPaneSlotBorrowed: %v", step, err)
			}
			if !slices.Equal(borrowed, got) {
				t.Fatalf("step %d (%s): borrowed scan %q, copied %q", step, what, borrowed, got)
			}
			gotKeys := keysAll(t, db, sid, from, to)
			slices.Sort(gotKeys)
			if want := model.keys(from, to); !slices.Equal(gotKeys, want) {
				t.Fatalf("step %d (%s): Keys(%d, %d) = %q, want %q", step, what, from, to, gotKeys, want)
			}
		}
		k := keys[rng.IntN(len(keys))]
		for _, s := range slices.Sorted(maps.Keys(model[k])) {
			p, ok, err := db.Pane(t.Context(), sid, k, s)
			if err != nil || !ok || p.Applied != model[k][s] {
				t.Fatalf("step %d (%s): Pane(%s, %d) = #%d %v %v, want #%d", step, what, k, s, p.Applied, ok, err, model[k][s])
			}
		}
	}
	for step := range 300 {
		var what string
		switch r := rng.IntN(20); {
		case r < 12:
			what = "commit"
			wm += rng.Int64N(3) * minute / 2
			limit := (wm - int64(spec.Granularity) - lateness - base) / minute
			var ps []sketchd.PaneRecord
			for range 1 + rng.IntN(8) {
				ps = append(ps, nextPane(limit-1, limit+4)) // open ones, and some final at their last write
			}
			if err := db.Commit(t.Context(), sid, sketchd.Flush{Panes: ps, Checkpoint: sketchd.Checkpoint{Position: applied, Watermark: wm}}); err != nil {
				t.Fatalf("step %d: Commit: %v", step, err)
			}
			for _, p := range ps {
				model.set(p)
			}
			fin, _ := finalLimit(&spec, wm)
			for _, s := range openStarts(t, db, sid) {
				if s <= fin {
					t.Fatalf("step %d: open holds a pane at %d, final under the committed watermark %d", step, s, wm)
				}
			}
		case r < 14:
			what = "apply"
			ps := []sketchd.PaneRecord{nextPane(-5, 40)}
			if err := db.ApplyPanes(t.Context(), sid, ps); err != nil {
				t.Fatalf("step %d: ApplyPanes: %v", step, err)
			}
			model.set(ps[0])
		case r < 16:
			what = "update"
			p := nextPane(-5, 40)
			if held := openPaneIDs(t, db, sid); len(held) > 0 && rng.IntN(2) == 0 {
				what = "update of a pane open holds"
				h := held[rng.IntN(len(held))]
				p = modelPane(h.Key, h.Start, applied)
			}
			res, err := db.UpdatePane(t.Context(), sid, p.Key, p.Start, Import{ID: fmt.Sprintf("u%d", step), Aggregate: "users"}, func(e *sketchd.PaneRecord, _ bool) error {
				e.Events, e.Applied, e.Sketches = p.Events, p.Applied, p.Sketches
				return nil
			})
			if err != nil || !res.Applied {
				t.Fatalf("step %d: UpdatePane: %v %v", step, res.Applied, err)
			}
			model.set(p)
		case r < 18:
			what = "crash inside a move: equal copies in open and panes"
			copyOpenToPanes(t, db)
		default:
			what = "reopen"
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if db, err = Open(dir, testLogger(t), nil, o); err != nil {
				t.Fatal(err)
			}
		}
		check(step, what)
	}
}

// copyOpenToPanes copies every pane the open family holds into the panes
// family, as a move that stopped after its first step leaves them.
func copyOpenToPanes(t *testing.T, db *DB) {
	t.Helper()
	err := db.open.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte{prefixPane}
		it := txn.NewIterator(opt)
		defer it.Close()
		var entries []indexEntry
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			entries = append(entries, indexEntry{it.Item().KeyCopy(nil), v})
		}
		return db.writeBatch(db.panes, entries, true)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSettleWritesFinalPanesOnce: a live stream's commits rewrite its open
// panes in the open family only; the commit whose watermark makes a pane
// final moves it to the panes family, which then holds each final pane
// once, and nothing of the still open ones.
func TestSettleWritesFinalPanesOnce(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	info := createTest(t, db, "s", time.Minute)
	sid, spec := info.ID, info.Spec
	d := int64(spec.Granularity) + int64(spec.AllowedLateness)
	for sec := int64(0); sec < 300; sec++ {
		wm := sec * int64(time.Second)
		start := wm / minute * minute
		commitWM(t, db, sid, wm, pane("k", start, uint64(sec+1), blob(uint64(sec), 64)))
	}
	wm := 299 * int64(time.Second)
	var settled []int64
	err := db.panes.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = baseSpace(sid, 0).pane
		opt.AllVersions = true
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, _, s, _ := baseSpace(sid, 0).parsePaneKey(it.Item().Key())
			settled = append(settled, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for s := int64(0); s+d <= wm; s += minute {
		want = append(want, s)
	}
	if !slices.Equal(settled, want) {
		t.Errorf("panes family holds versions of starts %v, want each final start once: %v", settled, want)
	}
	for _, s := range openStarts(t, db, sid) {
		if s+d <= wm {
			t.Errorf("open still holds the final pane at %d", s)
		}
	}
	if got := scanAll(t, db, sid, []string{"k"}, 0, day); len(got) != 5 {
		t.Errorf("ScanPanes = %q, want the 5 minutes", got)
	}
}

// commitWM commits panes with the watermark wm (and position wm).
func commitWM(t testing.TB, db *DB, sid uint32, wm int64, panes ...sketchd.PaneRecord) {
	t.Helper()
	cp := sketchd.Checkpoint{Position: uint64(wm), MaxEventTime: wm, Watermark: wm}
	if err := db.Commit(t.Context(), sid, sketchd.Flush{Panes: panes, Checkpoint: cp}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// TestUpgradeFromV2 opens a store written by format version 2 (no open
// family: every pane in panes) and checks that it reads back the same and
// is marked version 3 in every family.
func TestUpgradeFromV2(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, testLogger(t), nil, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	fillFamilies(t, db)
	if len(openStarts(t, db, 1)) == 0 {
		t.Fatal("fillFamilies left nothing in the open family: the test would not fold anything")
	}
	want := describeStore(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	foldOpen(t, dir)
	db = openTest(t, dir, quietOptions())
	if got := describeStore(t, db); got != want {
		t.Errorf("after the upgrade:\n%s\nwant:\n%s", got, want)
	}
	for _, bdb := range []*badger.DB{db.panes, db.open, db.meta} {
		if v, ok, err := readFormat(bdb); err != nil || !ok || v != formatVersion {
			t.Errorf("format marker = %d %v %v, want %d", v, ok, err, formatVersion)
		}
	}
}
