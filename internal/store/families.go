package store

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// The store is three Badger databases, "families" (RocksDB's column
// families, which Badger does not have):
//
//	panes  dir        'P' final base panes, and what is written in one
//	                  transaction with them: 'M' applied import ids,
//	                  'B' backfill progress
//	open   dir/open   'P' base panes ingestion still rewrites (openfam.go)
//	meta   dir/meta   everything else: specs, checkpoints, key indexes,
//	                  rollup tiers, cursors, marks
//
// All hold the format marker 'F'. Why three: a commit rewrites every live
// key's open pane and its checkpoint; in one Badger, every memtable flush
// (a level-0 table) then spans 'C' (checkpoints) to 'P' (panes), so every
// level-0 compaction merges with every table of the base level, the whole
// store, and the query load starves while it runs (docs/operations.md,
// "Compactions"). With the panes alone, a level-0 table still spans the
// live partition's whole key range (keys are key-major), so each
// compaction merges with the day's tables (BenchmarkCompactionLayout);
// with the open panes alone, it merges with the few MB of their latest
// versions (BenchmarkSteadyCommit).
//
// A write that spans families is ordered so that any prefix of it is
// safe: key-index entries (meta, synced), then panes (open, synced), then
// the checkpoint (meta, synced), then the panes the checkpoint made final
// moved from open to panes (openfam.go). A pane stored without its
// checkpoint is replayed over: its Applied makes the replay skip what it
// holds.

// metaDir is the meta family's directory under the store's.
func metaDir(dir string) string { return filepath.Join(dir, "meta") }

// openDir is the open family's directory under the store's.
func openDir(dir string) string { return filepath.Join(dir, "open") }

// inPanes reports whether keys of prefix kind live in the panes family.
func inPanes(kind byte) bool {
	return kind == prefixPane || kind == prefixImportID || kind == prefixBackfill
}

// family returns the Badger database that holds keys of prefix kind.
func (db *DB) family(kind byte) *badger.DB {
	if inPanes(kind) {
		return db.panes
	}
	return db.meta
}

// paneFamily returns the Badger database that holds sp's panes (its key
// index is always in meta).
func (db *DB) paneFamily(sp space) *badger.DB { return db.family(sp.pane[0]) }

// syncAll makes every write to any family durable.
func (db *DB) syncAll() error {
	for _, bdb := range []*badger.DB{db.panes, db.open, db.meta} {
		if err := bdb.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// migrateFamilies moves a store written by format version 1 (one Badger:
// everything in dir) into the two families: it copies every key that
// belongs in meta, marks meta as this version, then deletes the copies
// from panes and marks panes. Each step is repeatable: a crash in the
// middle redoes it at the next open (initFormat).
func (db *DB) migrateFamilies() error {
	n, err := db.copyToMeta()
	if err != nil {
		return fmt.Errorf("store: migrate to two families: copy: %w", err)
	}
	if err := db.finishMigration(); err != nil {
		return err
	}
	db.log.Info("moved the store's metadata into its own family (format 1 -> 2)", "keys", n)
	return nil
}

// copyToMeta copies every key of panes that belongs in meta into meta and
// marks meta as this version. It returns how many keys it copied.
func (db *DB) copyToMeta() (int, error) {
	n := 0
	wb := db.meta.NewWriteBatch()
	defer wb.Cancel()
	err := db.panes.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			item := it.Item()
			if k := item.Key()[0]; inPanes(k) || k == prefixFormat {
				// Skip the kind whole: the panes are most of the store.
				if k == 0xFF {
					break
				}
				it.Seek([]byte{k + 1})
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := wb.Set(item.KeyCopy(nil), v); err != nil {
				return err
			}
			n++
			it.Next()
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err == nil {
		err = setFormat(db.meta)
	}
	return n, err
}

// finishMigration deletes from panes every key that belongs in meta
// (migrateFamilies copied them) and marks panes as this version.
func (db *DB) finishMigration() error {
	var prefixes [][]byte
	err := db.panes.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		it := txn.NewIterator(opt)
		defer it.Close()
		for b := 0; b < 256; b++ {
			kind := byte(b)
			if inPanes(kind) || kind == prefixFormat {
				continue
			}
			if it.Seek([]byte{kind}); it.Valid() && it.Item().Key()[0] == kind {
				prefixes = append(prefixes, []byte{kind})
			}
		}
		return nil
	})
	if err == nil && len(prefixes) > 0 {
		err = db.panes.DropPrefix(prefixes...)
	}
	if err == nil {
		err = setFormat(db.panes)
	}
	if err != nil {
		return fmt.Errorf("store: migrate to two families: drop: %w", err)
	}
	return nil
}

// readFormat returns the format version stored in bdb; ok is false if
// none is.
func readFormat(bdb *badger.DB) (v uint32, ok bool, err error) {
	err = bdb.View(func(txn *badger.Txn) error {
		k := formatKey()
		it, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error {
			v, err = decodeU32(k, b, fmtVersion)
			ok = err == nil
			return err
		})
	})
	return v, ok, err
}

// setFormat writes this build's format version into bdb and syncs.
func setFormat(bdb *badger.DB) error {
	err := bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(formatKey(), encodeU32(fmtVersion, formatVersion))
	})
	if err != nil {
		return err
	}
	return bdb.Sync()
}

// initFormat checks the families' format markers: it writes them into a
// new store (open, then meta, then panes), migrates a version-1 store,
// upgrades a version-2 one (its open family starts empty: version 2 kept
// every pane in panes), and finishes either when a crash stopped it. The
// panes family's marker is written last, so a store whose panes say 3 has
// the other two.
func (db *DB) initFormat() error {
	pv, pok, err := readFormat(db.panes)
	if err == nil && pok && (pv < 1 || pv > formatVersion) {
		err = fmt.Errorf("%w: store format version %d, this build reads %d", ErrCorrupt, pv, formatVersion)
	}
	if err != nil {
		return fmt.Errorf("store: format marker: %w", err)
	}
	mv, mok, err := readFormat(db.meta)
	if err == nil && mok && (mv < 2 || mv > formatVersion) {
		err = fmt.Errorf("%w: meta family format version %d, this build reads %d", ErrCorrupt, mv, formatVersion)
	}
	if err != nil {
		return fmt.Errorf("store: format marker: %w", err)
	}
	ov, ook, err := readFormat(db.open)
	switch {
	case err != nil:
	case ook && ov != formatVersion:
		err = fmt.Errorf("%w: open family format version %d, this build reads %d", ErrCorrupt, ov, formatVersion)
	case !ook && pok && pv == formatVersion:
		err = fmt.Errorf("%w: store format version %d but its open family (%s) is missing or empty", ErrCorrupt, pv, openDir(db.dir))
	case !ook:
		err = setFormat(db.open)
	}
	if err != nil {
		return fmt.Errorf("store: format marker: %w", err)
	}
	switch {
	case pok && pv == 1 && !mok:
		return db.migrateFamilies()
	case pok && pv == 1: // a migration stopped after its copy
		if mv < formatVersion { // by a build of version 2
			if err := setFormat(db.meta); err != nil {
				return fmt.Errorf("store: format marker: %w", err)
			}
		}
		return db.finishMigration()
	case pok && !mok:
		return fmt.Errorf("%w: store format version %d but its meta family (%s) is missing or empty", ErrCorrupt, pv, metaDir(db.dir))
	case !mok || mv < formatVersion: // a new store, or version 2
		err = setFormat(db.meta)
	}
	if err == nil && (!pok || pv < formatVersion) {
		err = setFormat(db.panes)
	}
	if err != nil {
		return fmt.Errorf("store: format marker: %w", err)
	}
	return nil
}
