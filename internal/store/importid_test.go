package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// importEdit is an UpdatePane edit that appends the aggregate's name to
// the pane's blobs (so the pane tells which imports were applied) and
// counts its calls.
func importEdit(imp *Import, calls *int) func(p *sketchd.PaneRecord, exists bool) error {
	return func(p *sketchd.PaneRecord, _ bool) error {
		*calls++
		p.Sketches = append(p.Sketches, []byte(imp.Aggregate))
		return nil
	}
}

// readPane returns the stored pane (key, start) of sid, if any.
func readPane(t testing.TB, db *DB, sid uint32, key string, start int64) (sketchd.PaneRecord, bool) {
	t.Helper()
	var got []sketchd.PaneRecord
	if err := db.ScanPanes(t.Context(), sid, []string{key}, start, start+1, func(p sketchd.PaneRecord) error {
		got = append(got, p)
		return nil
	}); err != nil {
		t.Fatalf("ScanPanes: %v", err)
	}
	if len(got) == 0 {
		return sketchd.PaneRecord{}, false
	}
	return got[0], true
}

// blobNames lists a pane's blobs as strings (importEdit's names).
func blobNames(p sketchd.PaneRecord) string {
	var names []string
	for _, b := range p.Sketches {
		names = append(names, string(b))
	}
	return strings.Join(names, ",")
}

// setRaw stores v under the Badger key k of the panes family.
func setRaw(t testing.TB, db *DB, k, v []byte) {
	t.Helper()
	if err := db.panes.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }); err != nil {
		t.Fatal(err)
	}
}

// getRaw reads the Badger key k of the panes family (nil: absent).
func getRaw(t testing.TB, db *DB, k []byte) []byte {
	t.Helper()
	var v []byte
	err := db.panes.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestImportIDs: an import id names one source pane's import into one
// pane, its aggregates one UpdatePane each. In order, on one pane: the
// first aggregate adds its whole count to the pane's events; a retry
// (same aggregate, pane and digest) changes nothing; the same aggregate
// with another digest, or the id into another key or pane, is an
// *ImportConflictError that writes nothing (no pane, no key-index entry);
// another aggregate merges and adds only how much its count exceeds the
// largest count under the id (max, not sum); another id adds up. The
// record survives a reopen.
func TestImportIDs(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	sid := createTest(t, db, "imp", time.Minute).ID
	p0 := 10 * minute
	digest := func(s string) [DigestLen]byte { return sha256.Sum256([]byte(s)) }
	users := Import{ID: "mig-1", Aggregate: "users", Count: 5, Digest: digest("users body")}
	conflictAt := func(agg, key string, start int64) *ImportConflictError {
		return &ImportConflictError{ID: "mig-1", Aggregate: agg, Key: key, Start: start}
	}
	calls := 0
	for _, s := range []struct {
		name     string
		key      string
		start    int64
		imp      Import
		applied  bool
		added    uint64
		conflict *ImportConflictError
		events   uint64 // the pane (de, p0)'s, after the step
		blobs    string // its blobs: the aggregates applied, in order
	}{
		{"a new id adds its whole count", "de", p0, users, true, 5, nil, 5, "users"},
		{"a retry changes nothing", "de", p0, users, false, 0, nil, 5, "users"},
		{"the same aggregate from other bytes conflicts", "de", p0,
			Import{ID: "mig-1", Aggregate: "users", Count: 6, Digest: digest("another users body")}, false, 0,
			conflictAt("users", "de", p0), 5, "users"},
		{"another aggregate with fewer events adds none", "de", p0,
			Import{ID: "mig-1", Aggregate: "urls", Count: 3, Digest: digest("urls body")}, true, 0, nil, 5, "users,urls"},
		{"another aggregate with more events adds the excess over the most", "de", p0,
			Import{ID: "mig-1", Aggregate: "ms", Count: 8, Digest: digest("ms body")}, true, 3, nil, 8, "users,urls,ms"},
		{"a retry of a later aggregate changes nothing", "de", p0,
			Import{ID: "mig-1", Aggregate: "urls", Count: 3, Digest: digest("urls body")}, false, 0, nil, 8, "users,urls,ms"},
		{"another key conflicts", "fr", p0, users, false, 0, conflictAt("", "de", p0), 8, "users,urls,ms"},
		{"another pane conflicts", "de", p0 + minute,
			Import{ID: "mig-1", Aggregate: "new", Count: 1, Digest: digest("new body")}, false, 0,
			conflictAt("", "de", p0), 8, "users,urls,ms"},
		{"another id adds up", "de", p0, Import{ID: "mig-2", Aggregate: "users", Count: 5, Digest: users.Digest}, true, 5, nil, 13, "users,urls,ms,users"},
	} {
		before := calls
		res, err := db.UpdatePane(t.Context(), sid, s.key, s.start, s.imp, importEdit(&s.imp, &calls))
		if s.conflict != nil {
			var ce *ImportConflictError
			if !errors.As(err, &ce) || !errors.Is(err, ErrImportConflict) || *ce != *s.conflict {
				t.Errorf("%s: %v, want %#v", s.name, err, s.conflict)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.Applied != s.applied || res.EventsAdded != s.added {
			t.Errorf("%s: %+v, want applied %t, %d events added", s.name, res, s.applied, s.added)
		}
		if applied := calls > before; applied != s.applied {
			t.Errorf("%s: edit called %d times", s.name, calls-before)
		}
		p, ok := readPane(t, db, sid, "de", p0)
		if !ok || p.Events != s.events || blobNames(p) != s.blobs {
			t.Errorf("%s: pane %s %q, want %d events, blobs %q", s.name, paneString(p), blobNames(p), s.events, s.blobs)
		}
	}
	// The conflicts wrote nothing: no pane, no key-index entry.
	if _, ok := readPane(t, db, sid, "fr", p0); ok {
		t.Error("a conflicting import into another key stored its pane")
	}
	if _, ok := readPane(t, db, sid, "de", p0+minute); ok {
		t.Error("a conflicting import into another pane stored it")
	}
	if keys := keysAll(t, db, sid, 0, day); len(keys) != 1 || keys[0] != "de" {
		t.Errorf("keys %q, want [de]", keys)
	}

	// The record is durable: after a reopen every aggregate imported under
	// the id is a retry, and a new one still adds only its excess.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	for _, agg := range []string{"users", "urls", "ms"} {
		imp := Import{ID: "mig-1", Aggregate: agg, Count: map[string]uint64{"users": 5, "urls": 3, "ms": 8}[agg], Digest: digest(agg + " body")}
		if res, err := db.UpdatePane(t.Context(), sid, "de", p0, imp, importEdit(&imp, &calls)); err != nil || res.Applied {
			t.Errorf("retry of %s after a reopen: %+v, %v", agg, res, err)
		}
	}
	imp := Import{ID: "mig-1", Aggregate: "city", Count: 10, Digest: digest("city body")}
	if res, err := db.UpdatePane(t.Context(), sid, "de", p0, imp, importEdit(&imp, &calls)); err != nil || !res.Applied || res.EventsAdded != 2 {
		t.Errorf("a fourth aggregate after a reopen: %+v, %v, want applied, 2 events added (10 - 8)", res, err)
	}
	if p, _ := readPane(t, db, sid, "de", p0); p.Events != 15 {
		t.Errorf("pane events %d, want 15", p.Events)
	}
}

// TestImportIDLegacyRecord: an id recorded by an older version (a u32
// frame of the id's length, all it held) keeps its meaning: the id was
// applied, and every later import under it, of any aggregate into any
// pane with any bytes, is a retry that changes nothing and leaves the
// record as it was.
func TestImportIDLegacyRecord(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "imp", time.Minute).ID
	const id = "backfill-17"
	// The bytes versions before the record held the import wrote:
	// version 1 | u32 len(id) | crc32c.
	legacy := binary.BigEndian.AppendUint32([]byte{1}, uint32(len(id)))
	legacy = binary.BigEndian.AppendUint32(legacy, crc32.Checksum(legacy, crc32.MakeTable(crc32.Castagnoli)))
	uk := updateIDKey(sid, id)
	setRaw(t, db, uk, legacy)
	calls := 0
	for _, imp := range []struct {
		key   string
		start int64
		agg   string
		body  string
	}{
		{"de", 10 * minute, "users", "a"},
		{"de", 10 * minute, "urls", "b"},
		{"fr", 10 * minute, "users", "a"},
		{"de", 11 * minute, "users", "c"},
	} {
		in := Import{ID: id, Aggregate: imp.agg, Count: 7, Digest: sha256.Sum256([]byte(imp.body))}
		res, err := db.UpdatePane(t.Context(), sid, imp.key, imp.start, in, importEdit(&in, &calls))
		if err != nil || res.Applied || res.EventsAdded != 0 {
			t.Errorf("%+v under a legacy id: %+v, %v, want a retry", imp, res, err)
		}
	}
	if calls != 0 {
		t.Errorf("edit called %d times", calls)
	}
	if got := scanAll(t, db, sid, []string{"de", "fr"}, 0, day); len(got) != 0 {
		t.Errorf("panes stored: %q", got)
	}
	if got := getRaw(t, db, uk); !bytes.Equal(got, legacy) {
		t.Errorf("the legacy record is now %x, want %x", got, legacy)
	}
}

// TestImportIDCorruptRecord: an id record that does not decode is a
// CorruptError for that import only: nothing is written (no pane, no
// key-index entry), the store stays healthy, and other ids import.
func TestImportIDCorruptRecord(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "imp", time.Minute).ID
	good := encodeImportRecord(&importRecord{key: "de", start: 10 * minute,
		aggs: []importedAggregate{{name: "users", count: 5}}})
	reframe := func(body []byte) []byte { return appendCRC(body) }
	calls := 0
	for i, c := range []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a record at all")},
		{"checksum", append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1)},
		{"unknown version", reframe(append([]byte{3}, good[1:len(good)-crcLen]...))},
		{"truncated body", reframe(good[:len(good)-crcLen-1])},
		{"key past the end", reframe([]byte{importIDVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 'd'})},
		{"no aggregates", reframe([]byte{importIDVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})},
		{"empty aggregate name", reframe(append([]byte{importIDVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, make([]byte, 8+DigestLen)...))},
		{"bytes after the aggregates", reframe(append(append([]byte(nil), good[:len(good)-crcLen]...), 0))},
		{"legacy frame of 3 bytes", reframe([]byte{importIDVersionLegacy, 0, 0, 0})},
	} {
		id := "bad-" + string(rune('a'+i))
		setRaw(t, db, updateIDKey(sid, id), c.v)
		imp := Import{ID: id, Aggregate: "users", Count: 5}
		res, err := db.UpdatePane(t.Context(), sid, "de", 10*minute, imp, importEdit(&imp, &calls))
		var ce *CorruptError
		if res.Applied || !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %+v, %v, want a CorruptError", c.name, res, err)
		}
	}
	if calls != 0 {
		t.Errorf("edit called %d times", calls)
	}
	if got := scanAll(t, db, sid, []string{"de"}, 0, day); len(got) != 0 {
		t.Errorf("panes stored: %q", got)
	}
	if keys := keysAll(t, db, sid, 0, day); len(keys) != 0 {
		t.Errorf("key-index entries stored: %q", keys)
	}
	if err := db.Healthy(); err != nil {
		t.Errorf("Healthy after corrupt records: %v", err)
	}
	imp := Import{ID: "good", Aggregate: "users", Count: 5}
	if res, err := db.UpdatePane(t.Context(), sid, "de", 10*minute, imp, importEdit(&imp, &calls)); err != nil || !res.Applied || res.EventsAdded != 5 {
		t.Errorf("another id: %+v, %v", res, err)
	}
}

// TestImportRecordEncoding: the version-2 value is laid out as
// docs/format.md says, and decodes to what was encoded.
func TestImportRecordEncoding(t *testing.T) {
	var d1, d2 [DigestLen]byte
	for i := range d1 {
		d1[i], d2[i] = 0x11, 0x22
	}
	rec := &importRecord{key: "de", start: -int64(time.Minute), aggs: []importedAggregate{
		{name: "users", count: 5, digest: d1},
		{name: "ms", count: 1 << 40, digest: d2},
	}}
	got := encodeImportRecord(rec)
	body := "02" + "fffffff207b8a800" + "0002" + "6465" + "0002" +
		"05" + hex.EncodeToString([]byte("users")) + "0000000000000005" + strings.Repeat("11", DigestLen) +
		"02" + hex.EncodeToString([]byte("ms")) + "0000010000000000" + strings.Repeat("22", DigestLen)
	if h := hex.EncodeToString(got[:len(got)-crcLen]); h != body {
		t.Errorf("encoded\n%s\nwant\n%s", h, body)
	}
	if len(got) != importRecordLen(rec) {
		t.Errorf("%d bytes, importRecordLen says %d", len(got), importRecordLen(rec))
	}
	back, err := decodeImportRecord([]byte("k"), got)
	if err != nil || back.legacy || back.key != rec.key || back.start != rec.start || len(back.aggs) != 2 ||
		back.aggs[0] != rec.aggs[0] || back.aggs[1] != rec.aggs[1] {
		t.Errorf("decoded %+v, %v, want %+v", back, err, rec)
	}
}

func FuzzDecodeImportRecord(f *testing.F) {
	f.Add(encodeImportRecord(&importRecord{key: "de", start: 60, aggs: []importedAggregate{{name: "users", count: 5}}}))
	f.Add(encodeU32(importIDVersionLegacy, 11))
	f.Add([]byte{})
	f.Add([]byte{importIDVersion, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeImportRecord([]byte("k"), v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("non-corrupt error %v", err)
			}
			return
		}
		if rec.legacy {
			if len(v) != 1+4+crcLen {
				t.Fatalf("a legacy record of %d bytes", len(v))
			}
			return
		}
		if got := encodeImportRecord(rec); !bytes.Equal(got, v) {
			t.Fatalf("re-encodes to %x, was %x", got, v)
		}
	})
}
