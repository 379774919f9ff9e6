package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// A stream's backfill progress is keyed prefixBackfill | sid (keys.go) ->
// a JSON frame of sketchd.BackfillStatus (see docs/format.md). It is
// written with the panes each backfill step changes, in one transaction,
// so a backfill resumes after a crash exactly where its last step ended.

func backfillKey(sid uint32) []byte { return sidPrefix(prefixBackfill, sid) }

// backfillMemo keeps each stream's backfill record as last read or written
// here: every status (so every query's target) asks for it, and only this
// DB writes it. A failed write forgets the stream's entry (the record may
// or may not have landed); DeleteStream forgets it too.
type backfillMemo struct {
	mu sync.Mutex
	m  map[uint32]backfillEntry
}

type backfillEntry struct {
	st sketchd.BackfillStatus
	ok bool
}

// load returns the entry of sid, reading it with read on a miss. The read
// runs under the memo's lock, so a write that lands meanwhile sets its
// entry after this one, never before it.
func (b *backfillMemo) load(sid uint32, read func() (backfillEntry, error)) (backfillEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.m[sid]; ok {
		return e, nil
	}
	e, err := read()
	if err != nil {
		return e, err
	}
	if b.m == nil {
		b.m = map[uint32]backfillEntry{}
	}
	b.m[sid] = e
	return e, nil
}

func (b *backfillMemo) set(sid uint32, e backfillEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[uint32]backfillEntry{}
	}
	b.m[sid] = e
}

func (b *backfillMemo) forget(sid uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, sid)
}

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
	e, err := db.backfills.load(streamID, func() (backfillEntry, error) {
		var e backfillEntry
		err := db.panes.View(func(txn *badger.Txn) error {
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
				if err := json.Unmarshal(body, &e.st); err != nil {
					return corrupt(item.Key(), "backfill JSON: "+err.Error())
				}
				e.ok = true
				return nil
			})
		})
		return e, err
	})
	if err != nil {
		return sketchd.BackfillStatus{}, false, db.readFailed("backfill", err)
	}
	return e.st, e.ok, nil
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
// stored is skipped: retention dropped it, or it never held an event;
// one the open family holds is first moved to the panes family,
// openfam.go) and writes them with st, the backfill's progress, in one Badger transaction,
// then syncs: after a crash either all of it or none is stored. The caller
// must only run it while ingestion of the stream is stopped (its commits
// would overwrite the panes). A step too large for one transaction is a
// *StepTooLargeError (matching ErrInvalid) that says how many of the
// first panes fit, and writes nothing: the caller makes the step smaller
// (whole messages fewer, so that its progress still names the last
// message it holds).
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
	w := info.PartitionWidth
	db.backfills.forget(streamID) // until this write is known to have landed
	// The edits go to the panes family: copies open holds move there
	// first (openfam.go).
	pks := make([][]byte, len(panes))
	for i, pa := range panes {
		pks[i] = appendPaneKey(nil, streamID, partitionOf(pa.Start, w), pa.Key, pa.Start)
	}
	if err := db.moveOpen(pks); err != nil {
		return db.writeFailed("backfill", err)
	}
	var editErr error
	fit := len(panes) // the panes before the entry Badger refused
	err = db.panes.Update(func(txn *badger.Txn) error {
		for i, pa := range panes {
			fit = i
			pk := pks[i]
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
		fit = len(panes)
		return txn.Set(backfillKey(streamID), val)
	})
	switch {
	case editErr != nil:
		return editErr
	case errors.Is(err, badger.ErrTxnTooBig):
		return &StepTooLargeError{Panes: len(panes), Fit: fit}
	case err != nil:
		var ce *CorruptError
		if errors.As(err, &ce) {
			return err
		}
		return db.writeFailed("backfill", err)
	}
	if err := db.panes.Sync(); err != nil {
		return db.writeFailed("backfill", err)
	}
	db.writeOK()
	db.backfills.set(streamID, backfillEntry{st: st, ok: true})
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
	db.tierVersions.bump(streamID)
	return nil
}
