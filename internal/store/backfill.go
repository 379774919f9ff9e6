package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// A stream's backfill progress is keyed prefixBackfill | sid (keys.go) ->
// a JSON frame of sketchd.BackfillStatus (see docs/format.md). It is
// written with the panes each backfill step changes, in one transaction,
// so a backfill resumes after a crash exactly where its last step ended.

func backfillKey(sid uint32) []byte { return sidPrefix(prefixBackfill, sid) }

// Backfill returns the stream's backfill progress; ok is false if it has
// none.
func (db *DB) Backfill(ctx context.Context, streamID uint32) (st sketchd.BackfillStatus, ok bool, err error) {
	if err := db.enter(); err != nil {
		return st, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return st, false, err
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(backfillKey(streamID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			body, err := unframe(item.Key(), v, jsonVersion)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(body, &st); err != nil {
				return corrupt(item.Key(), "backfill JSON: "+err.Error())
			}
			ok = true
			return nil
		})
	})
	if err != nil {
		return sketchd.BackfillStatus{}, false, db.readFailed("backfill", err)
	}
	return st, ok, nil
}

// SetBackfill stores the stream's backfill progress and syncs.
func (db *DB) SetBackfill(ctx context.Context, streamID uint32, st sketchd.BackfillStatus) error {
	return db.BackfillPanes(ctx, streamID, nil, nil, st)
}

// PaneAt names one pane of a stream.
type PaneAt struct {
	Key   string
	Start int64
}

// BackfillPanes lets edit change each stored pane of panes (one that is not
// stored is skipped: retention dropped it, or it never held an event) and
// writes them with st, the backfill's progress, in one Badger transaction,
// then syncs: after a crash either all of it or none is stored. The caller
// must only run it while ingestion of the stream is stopped (its commits
// would overwrite the panes). A step too large for one transaction is
// ErrInvalid: the caller splits it.
func (db *DB) BackfillPanes(ctx context.Context, streamID uint32, panes []PaneAt, edit func(p *sketchd.PaneRecord) error, st sketchd.BackfillStatus) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	info, ok := db.streamByID(streamID)
	if !ok {
		return fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	stripe := &db.stripes[streamID%uint32(len(db.stripes))]
	stripe.Lock()
	defer stripe.Unlock()
	val, err := appendJSONValue(nil, nil, st)
	if err != nil {
		return err
	}
	w := partitionWidth(info.Spec.Granularity.Std())
	var editErr error
	err = db.bdb.Update(func(txn *badger.Txn) error {
		for _, pa := range panes {
			pk := appendPaneKey(nil, streamID, partitionOf(pa.Start, w), pa.Key, pa.Start)
			item, err := txn.Get(pk)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			p := sketchd.PaneRecord{Key: pa.Key, Start: pa.Start}
			if err := item.Value(func(v []byte) error { return decodePaneValue(pk, v, &p) }); err != nil {
				return err
			}
			if editErr = edit(&p); editErr != nil {
				return editErr
			}
			if err := txn.Set(pk, appendPaneValue(nil, &p)); err != nil {
				return err
			}
		}
		return txn.Set(backfillKey(streamID), val)
	})
	switch {
	case editErr != nil:
		return editErr
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: backfill step of %d panes too large for one transaction", ErrInvalid, len(panes))
	case err != nil:
		var ce *CorruptError
		if errors.As(err, &ce) {
			return err
		}
		return db.writeFailed("backfill", err)
	}
	if err := db.bdb.Sync(); err != nil {
		return db.writeFailed("backfill", err)
	}
	db.writeOK()
	return nil
}

// ResetTiers drops every rollup tier of the stream (panes, key index,
// cursors): the tier builder builds them again from the base panes. A
// backfill calls it, while ingestion is stopped, so that tier panes built
// before it carry what it added.
func (db *DB) ResetTiers(ctx context.Context, streamID uint32) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.dropPrefixes(tierPrefixes(streamID)...); err != nil {
		return db.writeFailed("reset tiers", err)
	}
	return nil
}
