package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// fillFamilies writes one of every kind of record a store holds: two
// streams, commits (panes, key index, checkpoints), a rollup tier and its
// cursor, an import (UpdatePane) and a backfill record.
func fillFamilies(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	a := createTest(t, db, "a", time.Minute).ID
	b := createTest(t, db, "b", time.Minute).ID
	for c := range 5 {
		var panes []sketchd.PaneRecord
		for k := range 4 {
			panes = append(panes, pane(fmt.Sprintf("k%d", k), int64(c)*minute, uint64(c*4+k+1), blob(uint64(c*4+k), 300)))
		}
		commit(t, db, a, uint64(c+1), panes...)
		commit(t, db, b, uint64(c+10), panes[:2]...)
	}
	tier := []sketchd.PaneRecord{pane("k0", 0, 9, blob(99, 200))}
	if err := db.WriteTier(ctx, a, time.Hour, tier, int64(time.Hour)); err != nil {
		t.Fatalf("WriteTier: %v", err)
	}
	if _, err := db.UpdatePane(ctx, b, "k9", 3*minute, Import{ID: "imp-1", Aggregate: "users"}, func(p *sketchd.PaneRecord, _ bool) error {
		p.Events, p.Sketches = 7, [][]byte{blob(7, 100)}
		return nil
	}); err != nil {
		t.Fatalf("UpdatePane: %v", err)
	}
	if err := db.SetBackfill(ctx, a, sketchd.BackfillStatus{Aggregates: []string{"x"}, From: 1, To: 9, Done: 4, Events: 12}); err != nil {
		t.Fatalf("SetBackfill: %v", err)
	}
}

// describeStore renders everything fillFamilies wrote, as read through
// the store's API.
func describeStore(t *testing.T, db *DB) string {
	t.Helper()
	ctx := t.Context()
	var out []string
	infos, err := db.Streams(ctx)
	if err != nil {
		t.Fatalf("Streams: %v", err)
	}
	for _, info := range infos {
		id := info.ID
		cp, ok, err := db.Checkpoint(ctx, id)
		if err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
		out = append(out, fmt.Sprintf("stream %s id %d checkpoint %v %+v", info.Spec.Name, id, ok, cp))
		keys := keysAll(t, db, id, 0, day)
		out = append(out, fmt.Sprintf("keys %q", keys))
		err = db.ScanPanes(ctx, id, keys, 0, day, func(p sketchd.PaneRecord) error {
			out = append(out, fmt.Sprintf("pane %s %x", paneString(p), p.Sketches))
			return nil
		})
		if err != nil {
			t.Fatalf("ScanPanes: %v", err)
		}
		end, ok, err := db.TierCursor(ctx, id, time.Hour)
		if err != nil {
			t.Fatalf("TierCursor: %v", err)
		}
		out = append(out, fmt.Sprintf("tier cursor %v %d", ok, end))
		err = db.ScanTierPanes(ctx, id, time.Hour, []string{"k0"}, 0, day, func(p sketchd.PaneRecord) error {
			out = append(out, fmt.Sprintf("tier pane %s %x", paneString(p), p.Sketches))
			return nil
		})
		if err != nil {
			t.Fatalf("ScanTierPanes: %v", err)
		}
		st, ok, err := db.Backfill(ctx, id)
		if err != nil {
			t.Fatalf("Backfill: %v", err)
		}
		out = append(out, fmt.Sprintf("backfill %v %+v", ok, st))
	}
	return strings.Join(out, "\n")
}

// openRawFamilies opens the two Badger databases of the closed store in
// dir, behind the store's back; the caller closes them.
func openRawFamilies(t *testing.T, dir string) (panes, meta *badger.DB) {
	t.Helper()
	bo := func(d string) badger.Options {
		return quietOptions().withDefaults().badgerOptions(d, badgerLogger{log: testLogger(t)})
	}
	panes, err := badger.Open(bo(dir))
	if err != nil {
		t.Fatal(err)
	}
	meta, err = badger.Open(bo(metaDir(dir)))
	if err != nil {
		_ = panes.Close()
		t.Fatal(err)
	}
	return panes, meta
}

// foldOpen turns a closed store in dir into what format version 2 wrote:
// the open family's panes copied into the panes family and dir/open
// removed, both families marked version 2.
func foldOpen(t *testing.T, dir string) {
	t.Helper()
	panes, meta := openRawFamilies(t, dir)
	open, err := badger.Open(quietOptions().withDefaults().badgerOptions(openDir(dir), badgerLogger{log: testLogger(t)}))
	if err != nil {
		t.Fatal(err)
	}
	err = open.View(func(ot *badger.Txn) error {
		it := ot.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		return panes.Update(func(pt *badger.Txn) error {
			for it.Rewind(); it.Valid(); it.Next() {
				if it.Item().Key()[0] == prefixFormat {
					continue
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if err := pt.Set(it.Item().KeyCopy(nil), v); err != nil {
					return err
				}
			}
			return pt.Set(formatKey(), encodeU32(fmtVersion, 2))
		})
	})
	if err == nil {
		err = meta.Update(func(txn *badger.Txn) error { return txn.Set(formatKey(), encodeU32(fmtVersion, 2)) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(open.Close(), meta.Close(), panes.Close()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(openDir(dir)); err != nil {
		t.Fatal(err)
	}
}

// collapseToV1 turns a closed store in dir into what format version 1
// wrote: one Badger in dir holding every key, marked version 1.
func collapseToV1(t *testing.T, dir string) {
	t.Helper()
	foldOpen(t, dir)
	panes, meta := openRawFamilies(t, dir)
	err := meta.View(func(mt *badger.Txn) error {
		it := mt.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		return panes.Update(func(pt *badger.Txn) error {
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if err := pt.Set(it.Item().KeyCopy(nil), v); err != nil {
					return err
				}
			}
			return pt.Set(formatKey(), encodeU32(fmtVersion, 1))
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(meta.Close(), panes.Close()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(metaDir(dir)); err != nil {
		t.Fatal(err)
	}
}

// metaKindsInPanes lists the key prefixes in the panes family that
// belong in meta.
func metaKindsInPanes(t *testing.T, db *DB) []string {
	t.Helper()
	var kinds []string
	err := db.panes.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[0]
			if !inPanes(k) && k != prefixFormat && !slices.Contains(kinds, string(k)) {
				kinds = append(kinds, string(k))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

// TestMigrateFromOneBadger opens a store written in format version 1 (one
// Badger) and checks that it reads back the same and keeps only panes in
// the panes family: straight, and when the migration stopped after its
// copy.
func TestMigrateFromOneBadger(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			dir := t.TempDir()
			db, err := Open(dir, testLogger(t), nil, quietOptions())
			if err != nil {
				t.Fatal(err)
			}
			fillFamilies(t, db)
			want := describeStore(t, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			collapseToV1(t, dir)
			if interrupted {
				copyOnly(t, dir)
			}

			db = openTest(t, dir, quietOptions())
			if got := describeStore(t, db); got != want {
				t.Errorf("after migration:\n%s\nwant:\n%s", got, want)
			}
			if kinds := metaKindsInPanes(t, db); len(kinds) > 0 {
				t.Errorf("panes family still holds keys of kinds %q", kinds)
			}
			for _, bdb := range []*badger.DB{db.panes, db.open, db.meta} {
				if v, ok, err := readFormat(bdb); err != nil || !ok || v != formatVersion {
					t.Errorf("format marker = %d %v %v, want %d", v, ok, err, formatVersion)
				}
			}
			// The import id moved with its pane: a retry changes nothing.
			b, err := db.Stream(t.Context(), "b")
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.UpdatePane(t.Context(), b.ID, "k9", 3*minute, Import{ID: "imp-1", Aggregate: "users"}, func(*sketchd.PaneRecord, bool) error {
				t.Error("edit called for an applied import id")
				return nil
			})
			if err != nil || res.Applied {
				t.Errorf("retried import: applied %v, err %v", res.Applied, err)
			}
		})
	}
}

// copyOnly runs the first step of the migration of the version-1 store in
// dir (the copy into meta) and stops, as a crash after it would.
func copyOnly(t *testing.T, dir string) {
	t.Helper()
	panes, meta := openRawFamilies(t, dir)
	db := &DB{panes: panes, meta: meta, log: testLogger(t)}
	n, err := db.copyToMeta()
	if err != nil || n == 0 {
		t.Fatalf("copyToMeta: %d keys, %v", n, err)
	}
	if err := errors.Join(meta.Close(), panes.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestMissingMetaFamily: a store whose meta directory is gone is refused
// as corrupt, not opened as an empty store.
func TestMissingMetaFamily(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, testLogger(t), nil, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	createTest(t, db, "a", time.Minute)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(metaDir(dir)); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, testLogger(t), nil, quietOptions())
	if err == nil {
		_ = db.Close()
		t.Fatal("Open succeeded without the meta family")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open: %v, want ErrCorrupt", err)
	}
	t.Logf("Open: %v", err)
}
