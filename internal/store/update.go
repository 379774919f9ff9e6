package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// MaxUpdateIDLen bounds the id of an UpdatePane.
const MaxUpdateIDLen = 128

// UpdatePane changes one stored pane outside the ingest path (an admin's
// import), at most once per id: in one Badger transaction it looks the id
// up among the stream's applied update ids, and if it is new, reads the
// pane (key, start) (exists is false, and p holds only Key and Start, when
// there is none), lets edit change p, and writes the pane, its key-index
// entry and the id together, then syncs. A retried update with the same id
// returns applied false and changes nothing; edit is not called. An error
// from edit aborts the update (it is returned as is).
//
// The caller must only update panes that ingestion no longer writes (final
// at the committed watermark): ingestion's commits would overwrite them.
// Update ids are kept until the stream is deleted.
//
// Errors: ErrNotFound (unknown stream), ErrInvalid (an empty or too long id
// or key, or a pane too large for one transaction), ErrCorrupt (the stored
// pane does not decode), ErrUnavailable for write failures.
func (db *DB) UpdatePane(ctx context.Context, streamID uint32, key string, start int64, id string, edit func(p *sketchd.PaneRecord, exists bool) error) (applied bool, err error) {
	if id == "" || len(id) > MaxUpdateIDLen {
		return false, fmt.Errorf("%w: update id of %d bytes (1 to %d)", ErrInvalid, len(id), MaxUpdateIDLen)
	}
	if len(key) > sketchd.MaxKeyLen {
		return false, fmt.Errorf("%w: key is %d bytes, max %d", ErrInvalid, len(key), sketchd.MaxKeyLen)
	}
	if err := db.enterWrite(); err != nil {
		return false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	info, ok := db.streamByID(streamID)
	if !ok {
		return false, fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	// The stream's stripe serializes this with its commits, whose key-index
	// updates read and widen the same entries.
	stripe := &db.stripes[streamID%uint32(len(db.stripes))]
	stripe.Lock()
	defer stripe.Unlock()

	w := info.PartitionWidth
	part := partitionOf(start, w)
	pk := appendPaneKey(nil, streamID, part, key, start)
	ik := indexKey(streamID, part, key)
	uk := updateIDKey(streamID, id)
	var editErr error
	update := func(txn *badger.Txn) error {
		applied = false
		if _, err := txn.Get(uk); err == nil {
			return nil // applied before
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		p := sketchd.PaneRecord{Key: key, Start: start}
		exists := false
		item, err := txn.Get(pk)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			exists = true
			if err := item.Value(func(v []byte) error { return decodePaneValue(pk, v, &p) }); err != nil {
				return err
			}
		}
		if editErr = edit(&p, exists); editErr != nil {
			return editErr
		}
		p.Key, p.Start = key, start
		if n := int64(len(pk) + paneValueLen(&p)); n > db.bdb.MaxBatchSize()*9/10 {
			editErr = fmt.Errorf("%w: pane is %d bytes, max %d", ErrInvalid, n, db.bdb.MaxBatchSize()*9/10)
			return editErr
		}
		if err := txn.Set(pk, appendPaneValue(nil, &p)); err != nil {
			return err
		}
		lo, hi := start, start
		if item, err := txn.Get(ik); err == nil {
			if err := item.Value(func(v []byte) error {
				l, h, err := decodeIndex(ik, v)
				lo, hi = min(lo, l), max(hi, h)
				return err
			}); err != nil {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					return err
				}
				lo, hi = partitionStart(part, w), partitionStart(part+1, w)-1
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set(ik, encodeIndex(lo, hi)); err != nil {
			return err
		}
		if err := db.rewindTiers(txn, streamID, &info.Spec, start); err != nil {
			return err
		}
		applied = true
		return txn.Set(uk, encodeU32(updateIDVersion, uint32(len(id))))
	}
	unlock := db.tierRewound.lock(streamID) // rewindTiers vs tier cursor writes
	err = db.bdb.Update(update)
	unlock()
	switch {
	case editErr != nil:
		return false, editErr
	case err != nil:
		var ce *CorruptError
		if errors.As(err, &ce) {
			return false, err
		}
		return false, db.writeFailed("update pane", err)
	}
	if applied {
		if err := db.bdb.Sync(); err != nil {
			return false, db.writeFailed("update pane", err)
		}
		db.writeOK()
	}
	return applied, nil
}
