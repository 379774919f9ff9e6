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
// import), at most once per id: it looks the id up among the stream's
// applied update ids, and if it is new, moves the pane out of the open
// family if it is there (openfam.go), widens the pane's key-index entry
// and rewinds the rollup tiers that hold it (meta family, synced), then in
// one Badger transaction reads the pane (key, start) (exists is false, and
// p holds only Key and Start, when there is none), lets edit change p, and
// writes the pane and the id together, then syncs. A retried update with the same id
// returns applied false and changes nothing; edit is not called. An error
// from edit aborts the update (it is returned as is).
//
// The caller must only update panes that ingestion no longer writes (final
// at the committed watermark): ingestion's commits would overwrite them.
// Update ids are kept until the stream is deleted.
//
// An update of a pane that starts before UpdateFrom (older than the
// stream's retention) changes nothing and returns an
// *ExpiredError (ErrExpired): reads would never return that pane. So does
// a retried id whose pane has left the retained range since.
//
// Errors: ErrNotFound (unknown stream), ErrInvalid (an empty or too long id
// or key, or a pane too large for one transaction), ErrExpired (a pane
// before the retained range), ErrCorrupt (the stored pane does not
// decode), ErrUnavailable for write failures.
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
	// A pane reads would never return is refused before anything is
	// written (it would be accepted and lost), whether or not its id was
	// applied while the pane was retained.
	if from := db.UpdateFrom(streamID); start < from {
		return false, &ExpiredError{Start: start, From: from}
	}
	if done, err := db.updateApplied(uk); err != nil || done {
		if err != nil {
			return false, db.writeFailed("update pane", err)
		}
		return false, nil
	}
	// The edit goes to the panes family: a copy open holds moves there
	// first (openfam.go).
	if err := db.moveOpen([][]byte{pk}); err != nil {
		return false, db.updateFailed(err)
	}
	unlock := db.tierRewound.lock(streamID) // rewindTiers vs tier cursor writes
	defer unlock()
	// The key index and the tier rewinds first (meta, synced), then the
	// pane with its id (panes): a crash between leaves an index entry
	// wider than its panes and tiers rebuilt for nothing, both harmless,
	// and the retried update applies it.
	if err := db.widenForUpdate(streamID, &info.Spec, ik, start, partitionStart(part, w), partitionStart(part+1, w)-1); err != nil {
		return false, db.updateFailed(err)
	}
	if len(info.Spec.Rollups) > 0 {
		db.tierVersions.bump(streamID) // rewindTiers may have lowered a cursor
	}
	editErr, err := db.editPane(pk, uk, len(id), key, start, edit)
	switch {
	case editErr != nil:
		return false, editErr
	case err != nil:
		return false, db.updateFailed(err)
	}
	db.writeOK()
	return true, nil
}

// widenForUpdate widens the key's index entry ik to the pane at start
// (its partition [lo, hi]) and rewinds the tiers that hold it, in meta,
// synced.
func (db *DB) widenForUpdate(streamID uint32, spec *sketchd.Stream, ik []byte, start, lo, hi int64) error {
	err := db.meta.Update(func(txn *badger.Txn) error {
		if err := widenIndex(txn, ik, start, lo, hi); err != nil {
			return err
		}
		return db.rewindTiers(txn, streamID, spec, start)
	})
	if err != nil {
		return err
	}
	return db.meta.Sync()
}

// editPane applies edit to the pane at pk (an empty record of key and
// start when there is none) and stores it with its update id uk (of an id
// idLen bytes long), in the panes family, synced. editErr is edit's own
// error, or the edited pane too large to store: the caller's, not the
// store's.
func (db *DB) editPane(pk, uk []byte, idLen int, key string, start int64, edit func(p *sketchd.PaneRecord, exists bool) error) (editErr, err error) {
	maxBytes := db.panes.MaxBatchSize() * 9 / 10
	err = db.panes.Update(func(txn *badger.Txn) error {
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
		if n := int64(len(pk) + paneValueLen(&p)); n > maxBytes {
			editErr = fmt.Errorf("%w: pane is %d bytes, max %d", ErrInvalid, n, maxBytes)
			return editErr
		}
		if err := txn.Set(pk, appendPaneValue(nil, &p)); err != nil {
			return err
		}
		return txn.Set(uk, encodeU32(updateIDVersion, uint32(idLen)))
	})
	if editErr != nil {
		return editErr, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, db.panes.Sync()
}

// updateApplied reports whether the update id key uk is stored.
func (db *DB) updateApplied(uk []byte) (bool, error) {
	found := false
	err := db.panes.View(func(txn *badger.Txn) error {
		_, err := txn.Get(uk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// updateFailed passes a corrupt stored value through and wraps any other
// error as a write failure.
func (db *DB) updateFailed(err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	return db.writeFailed("update pane", err)
}

// widenIndex widens the key-index entry ik, in txn, to cover start; a
// corrupt entry is rewritten as its whole partition [plo, phi].
func widenIndex(txn *badger.Txn, ik []byte, start, plo, phi int64) error {
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
			lo, hi = plo, phi
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	return txn.Set(ik, encodeIndex(lo, hi))
}
