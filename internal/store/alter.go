package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

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
	// Tiers the alter removes are dropped first: a crash before the spec
	// is written leaves the tier in the spec without panes or cursor, and
	// the builder builds it again from the start.
	if drop := droppedTiers(id, info.Spec.Rollups, spec.Rollups); len(drop) > 0 {
		if err := db.dropPrefixes(drop...); err != nil {
			return StreamInfo{}, db.writeFailed("alter stream: drop removed tiers", err)
		}
	}
	var val []byte
	err = db.meta.Update(func(txn *badger.Txn) error {
		if err := holdFinality(txn, &info, &next.Spec, &alt); err != nil {
			return err
		}
		next.Alters = append(append([]sketchd.Alteration(nil), info.Alters...), alt)
		var err error
		if val, err = encodeStream(&next); err != nil {
			return err
		}
		log, err := appendJSONValue(nil, nil, next.Alters)
		if err != nil {
			return err
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
	if len(info.Spec.Rollups) > 0 { // tiers dropped or changed
		db.tierVersions.bump(id)
	}
	return next, nil
}

// holdFinality keeps final what is final when an alter raises the allowed
// lateness: spec's FinalThrough becomes the end the old spec made final at
// the committed watermark (the lowest over a partitioned stream's
// partitions: what the stream's answers and emit targets gave as final),
// and alt lists the change. The new lateness then applies only to the panes
// after it. Without it the late events the raise admitted reached panes
// that answers had marked final, that the rollup tiers had merged and that
// emit targets had published as final, none of which saw them (found by
// black-box testing, for the tiers and then for emit). Nothing changes
// before the stream has a committed watermark.
func holdFinality(txn *badger.Txn, old *StreamInfo, spec *sketchd.Stream, alt *sketchd.Alteration) error {
	if spec.AllowedLateness <= old.Spec.AllowedLateness {
		return nil
	}
	wm, ok, err := committedWatermark(txn, old)
	if err != nil || !ok {
		return err
	}
	end := old.Spec.FinalEnd(wm)
	if spec.FinalThrough != nil && spec.FinalThrough.UnixNano() >= end {
		return nil
	}
	t := time.Unix(0, end).UTC()
	alt.Changes = append(slices.Clip(alt.Changes), fmt.Sprintf("final_through: %s -> %s", formatFinalThrough(spec.FinalThrough), t.Format(time.RFC3339Nano)))
	spec.FinalThrough = &t
	return nil
}

// committedWatermark reads the stream's committed watermark: the lowest of
// its partitions' (ok false while any has none).
func committedWatermark(txn *badger.Txn, info *StreamInfo) (wm int64, ok bool, err error) {
	ids := []uint32{info.ID}
	if len(info.Partitions) > 0 {
		ids = info.Partitions
	}
	wm = math.MaxInt64
	for _, id := range ids {
		cp, ok, err := readCheckpoint(txn, id)
		if err != nil || !ok || cp.Watermark == sketchd.NoTime {
			return 0, false, err
		}
		wm = min(wm, cp.Watermark)
	}
	return wm, true, nil
}

func formatFinalThrough(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.UTC().Format(time.RFC3339Nano)
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
