package store

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// MaxUpdateIDLen bounds the id of an UpdatePane.
const MaxUpdateIDLen = 128

// UpdatePane merges one aggregate's import into one stored pane outside
// the ingest path (an admin's import), under an import id (importid.go:
// an id names one source pane's import into one pane, one UpdatePane per
// aggregate). It looks the id's record up; a retry (the same aggregate
// and digest into the same pane, or any import under an id an older
// version recorded) returns Applied false and changes nothing, and an id
// that imported another pane, or this aggregate with another digest,
// returns an *ImportConflictError (ErrImportConflict) and changes nothing;
// edit is not called for either. Otherwise it moves the pane out of the
// open family if it is there (openfam.go), widens the pane's key-index
// entry and rewinds the rollup tiers that hold it (meta family, synced),
// then in one Badger transaction reads the pane (key, start) (exists is
// false, and p holds only Key and Start, when there is none), lets edit
// change p, adds to p.Events how much imp.Count exceeds the largest count
// imported under the id before (all of it under a new id), and writes the
// pane and the id's record (with imp added) together, then syncs. An
// error from edit aborts the update (it is returned as is).
//
// The caller must only update panes that ingestion no longer writes (final
// at the committed watermark): ingestion's commits would overwrite them.
// Import ids are kept until the stream is deleted.
//
// An update of a pane that starts before UpdateFrom (older than the
// stream's retention) changes nothing and returns an
// *ExpiredError (ErrExpired): reads would never return that pane. So does
// a retried id whose pane has left the retained range since.
//
// Errors: ErrNotFound (unknown stream), ErrInvalid (an empty or too long id,
// aggregate name or key, events past 2^64, or a pane too large for one
// transaction), ErrExpired (a pane before the retained range),
// ErrImportConflict, ErrCorrupt (the stored pane or the id's record does
// not decode), ErrUnavailable for write failures.
func (db *DB) UpdatePane(ctx context.Context, streamID uint32, key string, start int64, imp Import, edit func(p *sketchd.PaneRecord, exists bool) error) (ImportResult, error) {
	if err := checkImport(&imp); err != nil {
		return ImportResult{}, err
	}
	if len(key) > sketchd.MaxKeyLen {
		return ImportResult{}, fmt.Errorf("%w: key is %d bytes, max %d", ErrInvalid, len(key), sketchd.MaxKeyLen)
	}
	if err := db.enterWrite(); err != nil {
		return ImportResult{}, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return ImportResult{}, err
	}
	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	info, ok := db.streamByID(streamID)
	if !ok {
		return ImportResult{}, fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	// The stream's stripe serializes this with its commits, whose key-index
	// updates read and widen the same entries, and with the stream's other
	// updates, which read and write the same import ids: the record read
	// here is the one the pane is written with.
	stripe := &db.stripes[streamID%uint32(len(db.stripes))]
	stripe.Lock()
	defer stripe.Unlock()

	w := info.PartitionWidth
	part := partitionOf(start, w)
	pk := appendPaneKey(nil, streamID, part, key, start)
	ik := indexKey(streamID, part, key)
	uk := updateIDKey(streamID, imp.ID)
	// A pane reads would never return is refused before anything is
	// written (it would be accepted and lost), whether or not its id was
	// applied while the pane was retained.
	if from := db.UpdateFrom(streamID); start < from {
		return ImportResult{}, &ExpiredError{Start: start, From: from}
	}
	rec, err := db.readImportRecord(uk)
	if err != nil {
		return ImportResult{}, err
	}
	added, retry, err := rec.admit(key, start, &imp)
	switch {
	case err != nil:
		return ImportResult{}, err
	case retry:
		return ImportResult{}, nil
	case rec != nil && len(rec.aggs) >= math.MaxUint16:
		return ImportResult{}, fmt.Errorf("%w: import id %q holds %d aggregates, max %d", ErrInvalid, imp.ID, len(rec.aggs), math.MaxUint16)
	}
	// The edit goes to the panes family: a copy open holds moves there
	// first (openfam.go).
	if err := db.moveOpen([][]byte{pk}); err != nil {
		return ImportResult{}, db.updateFailed(err)
	}
	unlock := db.tierRewound.lock(streamID) // rewindTiers vs tier cursor writes
	defer unlock()
	// The key index and the tier rewinds first (meta, synced), then the
	// pane with its id (panes): a crash between leaves an index entry
	// wider than its panes and tiers rebuilt for nothing, both harmless,
	// and the retried update applies it.
	if err := db.widenForUpdate(streamID, &info.Spec, ik, start, partitionStart(part, w), partitionStart(part+1, w)-1); err != nil {
		return ImportResult{}, db.updateFailed(err)
	}
	if len(info.Spec.Rollups) > 0 {
		db.tierVersions.bump(streamID) // rewindTiers may have lowered a cursor
	}
	editErr, err := db.editPane(pk, uk, encodeImportRecord(rec.with(key, start, &imp)), key, start, added, edit)
	switch {
	case editErr != nil:
		return ImportResult{}, editErr
	case err != nil:
		return ImportResult{}, db.updateFailed(err)
	}
	db.writeOK()
	return ImportResult{Applied: true, EventsAdded: added}, nil
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
// start when there is none), adds added to its events and stores it with
// its import id's record rec under uk, in the panes family, synced.
// editErr is edit's own error, or the edited pane too large to store or
// its events past 2^64: the caller's, not the store's.
func (db *DB) editPane(pk, uk, rec []byte, key string, start int64, added uint64, edit func(p *sketchd.PaneRecord, exists bool) error) (editErr, err error) {
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
		if p.Events+added < p.Events {
			editErr = fmt.Errorf("%w: the pane's events %d plus %d imported overflow", ErrInvalid, p.Events, added)
			return editErr
		}
		p.Events += added
		p.Key, p.Start = key, start
		if n := int64(len(pk) + paneValueLen(&p) + len(uk) + len(rec)); n > maxBytes {
			editErr = fmt.Errorf("%w: pane is %d bytes, max %d", ErrInvalid, n, maxBytes)
			return editErr
		}
		if err := txn.Set(pk, appendPaneValue(nil, &p)); err != nil {
			return err
		}
		return txn.Set(uk, rec)
	})
	if editErr != nil {
		return editErr, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, db.panes.Sync()
}

// readImportRecord reads the record of the import id key uk: nil when the
// id is new. A record that does not decode is a *CorruptError, for this
// update only.
func (db *DB) readImportRecord(uk []byte) (*importRecord, error) {
	var rec *importRecord
	err := db.panes.View(func(txn *badger.Txn) error {
		item, err := txn.Get(uk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			rec, err = decodeImportRecord(uk, v)
			return err
		})
	})
	var ce *CorruptError
	switch {
	case errors.As(err, &ce):
		return nil, db.readFailed("update pane", err)
	case err != nil:
		return nil, db.writeFailed("update pane", err)
	}
	return rec, nil
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
