package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// restoringVersion frames the restoring mark (keys.go, prefixRestoring).
const restoringVersion = 1

// restoringMemo keeps each stream's restoring mark in memory after its
// first read or write: every stream status (so every query's target)
// reads it. A miss is read under the lock, so a concurrent write lands
// last.
type restoringMemo struct {
	mu sync.Mutex
	m  map[uint32]bool
}

// Restoring reports whether a changelog restore of the stream (a
// partition's store ID) is under way and incomplete: its state here is not
// whole, and answers must not cover it (docs/scale-out.md §2.5). The mark
// survives a crash, so a restore cut short stays marked until a later one
// completes.
func (db *DB) Restoring(ctx context.Context, streamID uint32) (bool, error) {
	if err := db.enter(); err != nil {
		return false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r := &db.restoring
	r.mu.Lock()
	defer r.mu.Unlock()
	if on, ok := r.m[streamID]; ok {
		return on, nil
	}
	k := restoringKey(streamID)
	on := false
	err := db.meta.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			_, err := decodeU64(k, v, restoringVersion)
			on = err == nil
			return err
		})
	})
	if err != nil {
		return false, db.readFailed("restoring mark", err)
	}
	if r.m == nil {
		r.m = map[uint32]bool{}
	}
	r.m[streamID] = on
	return on, nil
}

// SetRestoring sets (on) or clears the stream's restoring mark. It does
// not sync: a later synced commit (CommitChangelog) makes it durable with
// what precedes it, and a clear lost in a crash only keeps the mark until
// the next restore completes.
func (db *DB) SetRestoring(ctx context.Context, streamID uint32, on bool) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	if _, known := db.streamByID(streamID); !known {
		return fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	r := &db.restoring
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, streamID) // until this write is known to have landed
	err := db.meta.Update(func(txn *badger.Txn) error {
		if on {
			return txn.Set(restoringKey(streamID), encodeU64(restoringVersion, 1))
		}
		return txn.Delete(restoringKey(streamID))
	})
	if err != nil {
		return db.writeFailed("restoring mark", err)
	}
	if r.m == nil {
		r.m = map[uint32]bool{}
	}
	r.m[streamID] = on
	return nil
}

// forgetRestoring drops the memo of deleted streams.
func (db *DB) forgetRestoring(ids ...uint32) {
	r := &db.restoring
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		delete(r.m, id)
	}
}
