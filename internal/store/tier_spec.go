package store

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// SetRollups replaces the rollup tiers of the stream called name and
// persists its spec durably; the rest of the spec is unchanged. Tiers it
// keeps (same granularity) keep their panes and cursors; the panes, key
// index and cursor of tiers it removes are dropped. Validating the new spec
// is the caller's job. Errors: ErrNotFound, ErrUnavailable.
func (db *DB) SetRollups(ctx context.Context, name string, rollups []sketchd.Rollup) (StreamInfo, error) {
	if err := db.enterWrite(); err != nil {
		return StreamInfo{}, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return StreamInfo{}, err
	}
	db.adminMu.Lock()
	defer db.adminMu.Unlock()
	info, err := db.lookup(name)
	if err != nil {
		return StreamInfo{}, err
	}
	id := info.ID
	drop := droppedTiers(id, info.Spec.Rollups, rollups)
	info.Spec.Rollups = append([]sketchd.Rollup(nil), rollups...)
	val, err := encodeStream(&info)
	if err != nil {
		return StreamInfo{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(drop) > 0 {
		err = db.dropPrefixes(drop...)
	}
	if err == nil {
		err = db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(streamKey(name), val) })
	}
	if err == nil {
		err = db.bdb.Sync()
	}
	if err != nil {
		return StreamInfo{}, db.writeFailed("set rollups", err)
	}
	db.writeOK()
	if back, err := decodeStream(streamKey(name), val); err == nil {
		info = back
	}
	db.regMu.Lock()
	db.register(info)
	db.regMu.Unlock()
	return info, nil
}

// droppedTiers returns the key prefixes (panes, key index, cursor) of the
// tiers in old that rollups no longer has (by granularity).
func droppedTiers(id uint32, old, rollups []sketchd.Rollup) [][]byte {
	kept := map[sketchd.Duration]bool{}
	for _, r := range rollups {
		kept[r.Granularity] = true
	}
	var drop [][]byte
	for _, r := range old {
		if !kept[r.Granularity] {
			sp := tierSpace(id, r.Granularity.Std())
			drop = append(drop, sp.pane, sp.index, tierCursorKey(id, r.Granularity.Std()))
		}
	}
	return drop
}
