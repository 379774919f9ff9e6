package store

import "github.com/dgraph-io/badger/v4"

// Test hooks.

// rawSetPane writes raw bytes as the value of a pane key, bypassing the
// codec (for corruption tests).
func (db *DB) rawSetPane(sid uint32, key string, start int64, val []byte) error {
	w, err := db.paneWidth(sid)
	if err != nil {
		return err
	}
	k := appendPaneKey(nil, sid, partitionOf(start, w), key, start)
	bdb := db.panes // where the pane is read from: open when it holds it
	if err := db.open.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(k); err == nil {
			bdb = db.open
		}
		return nil
	}); err != nil {
		return err
	}
	return bdb.Update(func(txn *badger.Txn) error { return txn.Set(k, val) })
}

// rawSetIndex writes raw bytes as a key-index value.
func (db *DB) rawSetIndex(sid uint32, part int64, key string, val []byte) error {
	k := indexKey(sid, part, key)
	return db.meta.Update(func(txn *badger.Txn) error { return txn.Set(k, val) })
}

// countPrefix counts the keys under kind|sid (base panes: in panes or
// open, once each).
func (db *DB) countPrefix(kind byte, sid uint32) int {
	seen := map[string]bool{}
	fams := []*badger.DB{db.family(kind)}
	if kind == prefixPane {
		fams = append(fams, db.open)
	}
	for _, f := range fams {
		_ = f.View(func(txn *badger.Txn) error {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false
			opt.Prefix = sidPrefix(kind, sid)
			it := txn.NewIterator(opt)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				seen[string(it.Item().Key())] = true
			}
			return nil
		})
	}
	return len(seen)
}

// closeBadger closes the underlying Badger DBs behind the store's back, so
// that writes fail (for the ErrUnavailable tests).
func (db *DB) closeBadger() error {
	if err := db.panes.Close(); err != nil {
		return err
	}
	if err := db.open.Close(); err != nil {
		return err
	}
	return db.meta.Close()
}

// forgetPaneMemo empties the key listings' pane memo, as a drop does.
func (db *DB) forgetPaneMemo() {
	db.paneMemo.dropping()
	db.paneMemo.dropped()
}
