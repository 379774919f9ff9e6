package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// The alter log is keyed prefixAlters | sid (keys.go) -> a JSON frame of
// []sketchd.Alteration (see docs/format.md).

func altersKey(sid uint32) []byte { return sidPrefix(prefixAlters, sid) }

// AlterStream replaces a stream's spec with spec and appends alt to its
// alter log, in one Badger transaction: after a crash the stream has
// either the old spec and log or the new ones. The spec keeps its ID, so
// its panes and checkpoint stay; the caller makes sure spec changes
// nothing that the stored panes depend on (group_by, granularity,
// aggregates). It is the one way a stored spec changes: a PATCH, and a
// configuration that changes a stream's rollup tiers. Tiers spec keeps
// (same granularity) keep their panes and cursors; those it removes are
// dropped first.
func (db *DB) AlterStream(ctx context.Context, name string, spec sketchd.Stream, alt sketchd.Alteration) (StreamInfo, error) {
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
	if spec.Name != name {
		return StreamInfo{}, fmt.Errorf("%w: alter cannot rename stream %q", ErrInvalid, name)
	}
	next := info
	next.Spec = spec
	next.Alters = append(append([]sketchd.Alteration(nil), info.Alters...), alt)
	val, err := encodeStream(&next)
	if err != nil {
		return StreamInfo{}, err
	}
	log, err := appendJSONValue(nil, nil, next.Alters)
	if err != nil {
		return StreamInfo{}, err
	}
	// Tiers the alter removes are dropped first: a crash before the spec
	// is written leaves the tier in the spec without panes or cursor, and
	// the builder builds it again from the start.
	if drop := droppedTiers(id, info.Spec.Rollups, spec.Rollups); len(drop) > 0 {
		if err := db.dropPrefixes(drop...); err != nil {
			return StreamInfo{}, db.writeFailed("alter stream: drop removed tiers", err)
		}
	}
	unlock := db.tierRewound.lock(id) // rewindTiers vs tier cursor writes
	defer unlock()
	err = db.meta.Update(func(txn *badger.Txn) error {
		if spec.AllowedLateness > info.Spec.AllowedLateness {
			if err := db.rewindForLateness(txn, id, &spec); err != nil {
				return err
			}
		}
		if err := txn.Set(streamKey(name), val); err != nil {
			return err
		}
		return txn.Set(altersKey(id), log)
	})
	if err == nil {
		err = db.meta.Sync()
	}
	if err != nil {
		return StreamInfo{}, db.writeFailed("alter stream", err)
	}
	db.writeOK()
	if back, err := decodeStream(streamKey(name), val); err == nil {
		next.Spec = back.Spec
	}
	db.regMu.Lock()
	db.register(next)
	db.regMu.Unlock()
	if len(info.Spec.Rollups) > 0 { // tiers dropped, or rewound for lateness
		db.tierVersions.bump(id)
	}
	return next, nil
}

// rewindForLateness lowers the tier cursors of stream id, whose spec now
// allows more lateness, to the first pane no longer final under it (at
// its committed watermark): late events may now reach panes the tiers
// have merged, and the builder builds those tier panes again once their
// sources are final under the new lateness. Without it, the tiers kept
// the panes as they were before the late events and answered them, final
// (found by black-box testing: 100 of 150 events in a 2m tier pane).
func (db *DB) rewindForLateness(txn *badger.Txn, id uint32, spec *sketchd.Stream) error {
	cp, ok, err := readCheckpoint(txn, id)
	if err != nil || !ok || cp.Watermark == sketchd.NoTime {
		return err // nothing stored yet: nothing to rewind
	}
	g := int64(spec.Granularity)
	first := sketchd.PaneStart(cp.Watermark-int64(spec.AllowedLateness), g) - g // a pane before, for the edges
	return db.rewindTiers(txn, id, spec, first)
}

// loadAlters reads info's alter log, if any (loadStreams).
func loadAlters(txn *badger.Txn, info *StreamInfo) error {
	item, err := txn.Get(altersKey(info.ID))
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
		if err := json.Unmarshal(body, &info.Alters); err != nil {
			return corrupt(item.Key(), "alter log JSON: "+err.Error())
		}
		return nil
	})
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
