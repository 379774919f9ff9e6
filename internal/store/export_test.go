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
	return db.panes.Update(func(txn *badger.Txn) error { return txn.Set(k, val) })
}

// rawSetIndex writes raw bytes as a key-index value.
func (db *DB) rawSetIndex(sid uint32, part int64, key string, val []byte) error {
	k := indexKey(sid, part, key)
	return db.meta.Update(func(txn *badger.Txn) error { return txn.Set(k, val) })
}

// countPrefix counts the keys under kind|sid.
func (db *DB) countPrefix(kind byte, sid uint32) int {
	n := 0
	_ = db.family(kind).View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = sidPrefix(kind, sid)
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

// closeBadger closes the underlying Badger DBs behind the store's back, so
// that writes fail (for the ErrUnavailable tests).
func (db *DB) closeBadger() error {
	if err := db.panes.Close(); err != nil {
		return err
	}
	return db.meta.Close()
}

// forgetPaneMemo empties the key listings' pane memo, as a drop does.
func (db *DB) forgetPaneMemo() {
	db.paneMemo.dropping()
	db.paneMemo.dropped()
}
