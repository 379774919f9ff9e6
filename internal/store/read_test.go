package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// fixture: granularity 1h, so a partition is one day. Panes of keys a, b, c
// around the epoch and partition boundaries:
//
//	a: -25h -1h 0 1h 23h 24h 72h   (days -2, -1, 0, 0, 0, 1, 3)
//	b: -1h 23h                     (days -1, 0)
//	c: 48h                         (day 2)
func readFixture(t *testing.T) (*DB, uint32) {
	t.Helper()
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "f", time.Hour).ID
	var ps []sketchd.PaneRecord
	for _, h := range []int64{72, 24, 23, 1, 0, -1, -25} { // out of order on purpose
		ps = append(ps, pane("a", h*hour, uint64(100+h), blob(uint64(h+100), 8)))
	}
	ps = append(ps, pane("b", -hour, 1), pane("b", 23*hour, 2), pane("c", 48*hour, 3))
	commit(t, db, sid, 1, ps...)
	// An unrelated stream with the same keys must not leak in.
	other := createTest(t, db, "other", time.Hour).ID
	commit(t, db, other, 1, pane("a", 2*hour, 1), pane("z", 0, 1))
	return db, sid
}

func at(key string, hours ...int64) []string {
	var out []string
	for _, h := range hours {
		out = append(out, fmt.Sprintf("%s@%d", key, h*hour))
	}
	return out
}

func TestScanPanes(t *testing.T) {
	db, sid := readFixture(t)
	tests := []struct {
		name     string
		keys     []string
		from, to int64
		want     []string
	}{
		{"all of a", []string{"a"}, math.MinInt64, math.MaxInt64, at("a", -25, -1, 0, 1, 23, 24, 72)},
		{"keys in given order", []string{"c", "b", "a"}, -hour, 24 * hour,
			append(at("b", -1, 23), at("a", -1, 0, 1, 23)...)},
		{"from inclusive to exclusive", []string{"a"}, 0, 23 * hour, at("a", 0, 1)},
		{"to at partition boundary", []string{"a"}, -25 * hour, 0, at("a", -25, -1)},
		{"from at partition boundary", []string{"a"}, 24 * hour, 25 * hour, at("a", 24)},
		{"negative only", []string{"a", "b"}, -30 * hour, -hour + 1, append(at("a", -25, -1), at("b", -1)...)},
		{"skips empty partitions", []string{"a", "c"}, 25 * hour, 100 * hour, append(at("a", 72), at("c", 48)...)},
		{"missing key", []string{"nope", "c"}, 0, 100 * hour, at("c", 48)},
		{"empty range", []string{"a"}, hour, hour, nil},
		{"inverted range", []string{"a"}, 2 * hour, hour, nil},
		{"between panes", []string{"a"}, 2 * hour, 23 * hour, nil},
		{"duplicate key twice", []string{"c", "c"}, 0, 100 * hour, append(at("c", 48), at("c", 48)...)},
		{"prefix key not matched", []string{""}, math.MinInt64, math.MaxInt64, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scanAll(t, db, sid, tt.keys, tt.from, tt.to)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestScanPanesStops(t *testing.T) {
	db, sid := readFixture(t)
	ctx := context.Background()
	stop := errors.New("enough")
	n := 0
	err := db.ScanPanes(ctx, sid, []string{"a", "b"}, math.MinInt64, math.MaxInt64, func(p sketchd.PaneRecord) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 { //nolint:errorlint // the callback's error must come back as is
		t.Errorf("early stop: err %v after %d panes", err, n)
	}
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	err = db.ScanPanes(cctx, sid, []string{"a", "b"}, math.MinInt64, math.MaxInt64, func(p sketchd.PaneRecord) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("cancel: err %v after %d panes", err, n)
	}
	if err := db.ScanPanes(ctx, 999, []string{"a"}, 0, 1, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown stream: %v", err)
	}
}

func TestKeys(t *testing.T) {
	db, sid := readFixture(t)
	tests := []struct {
		name     string
		from, to int64
		want     []string
	}{
		{"everything", math.MinInt64, math.MaxInt64, []string{"a", "b", "c"}},
		{"day 0 whole", 0, day, []string{"a", "b"}},
		{"day 0 cut, both at 23h", 2 * hour, day, []string{"a", "b"}},
		{"day 0 cut, only a at 0h", 0, hour, []string{"a"}},
		{"day 0 cut before b", 0, 23 * hour, []string{"a"}},
		{"inside a gap", 2 * hour, 23 * hour, nil},
		{"day 2", 2 * day, 3 * day, []string{"c"}},
		{"days 1-3, first appearance order", day, 4 * day, []string{"a", "c"}},
		{"negative", -2 * day, 0, []string{"a", "b"}},
		{"one pane exactly", 48 * hour, 48*hour + 1, []string{"c"}},
		{"to exclusive", 47 * hour, 48 * hour, nil},
		{"empty range", hour, hour, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keysAll(t, db, sid, tt.from, tt.to)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	ctx := context.Background()
	stop := errors.New("stop")
	n := 0
	if err := db.Keys(ctx, sid, math.MinInt64, math.MaxInt64, func(string) error { n++; return stop }); err != stop || n != 1 { //nolint:errorlint // as is
		t.Errorf("early stop: %v after %d", err, n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.Keys(cctx, sid, 0, day, func(string) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCorruptValues(t *testing.T) {
	db, sid := readFixture(t)
	ctx := context.Background()
	garbage := [][]byte{nil, []byte("x"), []byte("garbage that is long enough to look like a pane value")}
	// A valid frame (correct CRC) whose body lies about its blob lengths.
	lying := appendPaneValue(nil, &sketchd.PaneRecord{Sketches: [][]byte{blob(1, 10)}})
	lying[21] = 0xff // blob length, high byte
	lying = appendCRC(lying[:len(lying)-crcLen])
	garbage = append(garbage, lying)
	for i, g := range garbage {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if err := db.rawSetPane(sid, "a", hour, g); err != nil {
				t.Fatal(err)
			}
			_, _, err := db.Pane(ctx, sid, "a", hour)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || len(ce.Key) == 0 {
				t.Fatalf("Pane on garbage: %v", err)
			}
			err = db.ScanPanes(ctx, sid, []string{"a"}, 0, day, func(sketchd.PaneRecord) error { return nil })
			if !errors.As(err, &ce) {
				t.Errorf("ScanPanes over garbage: %v", err)
			}
			// Reads that do not touch it still work.
			if got := scanAll(t, db, sid, []string{"a"}, 2*hour, 100*hour); !slices.Equal(got, at("a", 23, 24, 72)) { //nolint:contextcheck // the helper uses t.Context()
				t.Errorf("other panes of a: %q", got)
			}
			if got := scanAll(t, db, sid, []string{"b"}, 0, day); !slices.Equal(got, at("b", 23)) { //nolint:contextcheck // the helper uses t.Context()
				t.Errorf("key b: %q", got)
			}
			if _, ok, err := db.Pane(ctx, sid, "a", 0); !ok || err != nil {
				t.Errorf("neighbour pane: %v %v", ok, err)
			}
		})
	}
	// A corrupt key-index entry: Keys falls back to the panes and stays
	// exact; the next commit rewrites the entry.
	if err := db.rawSetIndex(sid, 2, "c", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if got := keysAll(t, db, sid, 2*day, 3*day); !slices.Equal(got, []string{"c"}) {
		t.Errorf("Keys with corrupt index entry: %q", got)
	}
	if got := keysAll(t, db, sid, 2*day, 48*hour); got != nil {
		t.Errorf("Keys with corrupt index entry, empty range: %q", got)
	}
	commit(t, db, sid, 2, pane("c", 49*hour, 4))
	if got := keysAll(t, db, sid, 2*day, 3*day); !slices.Equal(got, []string{"c"}) {
		t.Errorf("Keys after rewrite: %q", got)
	}
	if err := db.Healthy(); err != nil {
		t.Errorf("corrupt reads made the store unhealthy: %v", err)
	}
}

func TestKeyOrder(t *testing.T) {
	// Sign-flipped big-endian keeps numeric order, negatives first.
	vals := []int64{math.MinInt64, -day - 1, -day, -1, 0, 1, day, math.MaxInt64}
	var prev []byte
	for _, v := range vals {
		k := appendPaneKey(nil, 1, partitionOf(v, day), "k", v)
		if prev != nil && string(prev) >= string(k) {
			t.Errorf("key of %d does not sort after its predecessor", v)
		}
		prev = k
		_, key, start, ok := baseSpace(1, 0).parsePaneKey(k)
		if !ok || string(key) != "k" || start != v {
			t.Errorf("parse(%d) = %q %d %v", v, key, start, ok)
		}
	}
	for _, tt := range []struct{ start, want int64 }{{0, 0}, {day - 1, 0}, {day, 1}, {-1, -1}, {-day, -1}, {-day - 1, -2}} {
		if got := partitionOf(tt.start, day); got != tt.want {
			t.Errorf("partitionOf(%d) = %d, want %d", tt.start, got, tt.want)
		}
	}
	for _, tt := range []struct {
		g    time.Duration
		want int64
	}{{time.Minute, day}, {time.Hour, day}, {7 * time.Hour, 28 * hour}, {48 * time.Hour, 2 * day}, {0, day}} {
		if got := partitionWidth(tt.g); got != tt.want {
			t.Errorf("partitionWidth(%v) = %d, want %d", tt.g, got, tt.want)
		}
	}
}

func FuzzDecodePane(f *testing.F) {
	f.Add(appendPaneValue(nil, &sketchd.PaneRecord{Events: 3, Applied: 2, Sketches: [][]byte{{1, 2}, {}}}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		var p sketchd.PaneRecord
		err := decodePaneValue([]byte("k"), v, &p)
		// A one-slot decode refuses the same values and copies the same
		// bytes of its slot.
		for slot := range 3 {
			var ps sketchd.PaneRecord
			serr := decodePane([]byte("k"), v, slot, &ps)
			if (serr == nil) != (err == nil) {
				t.Fatalf("slot %d: err %v, decodePaneValue's %v", slot, serr, err)
			}
			if serr == nil && (ps.Events != p.Events || !bytes.Equal(sketchd.SlotBlob(&ps, slot), sketchd.SlotBlob(&p, slot))) {
				t.Fatalf("slot %d decodes differently", slot)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("non-corrupt error %v", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		if got := appendPaneValue(nil, &p); string(got) != string(v) {
			t.Fatalf("re-encode differs")
		}
	})
}
