package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// Rollup tiers (sketchd.Rollup) are stored like the base panes, in their own
// space (keys.go: 'R' panes, 'Q' key index, 'U' cursor), with the same pane
// value encoding. A tier pane is written whole, never incremented: the
// builder recomputes it from its source panes, so writing it twice writes
// the same bytes, and the tier's cursor (how far it is built) is written
// after its panes, in the same transaction when they fit in one.

// TierCursor returns the end (unix ns, exclusive) up to which the stream's
// tier of granularity tier is built; ok is false if it was never built.
func (db *DB) TierCursor(ctx context.Context, streamID uint32, tier time.Duration) (end int64, ok bool, err error) {
	if err := db.enter(); err != nil {
		return 0, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if _, err := db.space(streamID, tier); err != nil {
		return 0, false, err
	}
	k := tierCursorKey(streamID, tier)
	err = db.meta.View(func(txn *badger.Txn) error {
		end, ok, err = readCursor(txn, k)
		return err
	})
	if err != nil {
		return 0, false, db.readFailed("tier cursor", err)
	}
	return end, ok, nil
}

// WriteTier writes panes (whole, replacing what is stored) into the
// stream's tier of granularity tier, then its cursor built (unix ns: the
// tier is built up to there), and makes them durable. The panes, their
// key-index entries and the cursor go in one transaction when they fit in
// one; otherwise the cursor is in the last. Errors are as for Commit.
func (db *DB) WriteTier(ctx context.Context, streamID uint32, tier time.Duration, panes []sketchd.PaneRecord, built int64) error {
	return db.writeTier(ctx, streamID, tier, panes, &built)
}

// WriteTierPanes is WriteTier without a cursor: the panes of a unit too big
// for one write, but the last.
func (db *DB) WriteTierPanes(ctx context.Context, streamID uint32, tier time.Duration, panes []sketchd.PaneRecord) error {
	return db.writeTier(ctx, streamID, tier, panes, nil)
}

func (db *DB) writeTier(ctx context.Context, streamID uint32, tier time.Duration, panes []sketchd.PaneRecord, built *int64) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	maxEntry := db.meta.MaxBatchSize() * 9 / 10
	sp := tierSpace(streamID, tier)
	total := 0
	for i := range panes {
		p := &panes[i]
		if len(p.Key) > sketchd.MaxKeyLen {
			return fmt.Errorf("%w: tier pane %d: key is %d bytes, max %d", ErrInvalid, i, len(p.Key), sketchd.MaxKeyLen)
		}
		n := sp.paneKeyLen(len(p.Key)) + paneValueLen(p)
		if int64(n) > maxEntry {
			return fmt.Errorf("%w: tier pane %d is %d bytes, max %d", ErrInvalid, i, n, maxEntry)
		}
		total += n
	}
	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	if _, err := db.space(streamID, tier); err != nil {
		return err
	}
	index, err := db.indexUpdates(sp, panes)
	if err != nil {
		return db.writeFailed("write tier", err)
	}
	arena := make([]byte, 0, total)
	var entries []indexEntry
	entries = append(entries, index...)
	for i := range panes {
		p := &panes[i]
		off := len(arena)
		arena = sp.appendPaneKey(arena, partitionOf(p.Start, sp.width), p.Key, p.Start)
		k := arena[off:len(arena):len(arena)]
		off = len(arena)
		arena = appendPaneValue(arena, p)
		entries = append(entries, indexEntry{k, arena[off:len(arena):len(arena)]})
	}
	if built != nil {
		// Imports rewind tier cursors (tier_rewind.go): none may slip
		// between the check and the write.
		unlock := db.tierRewound.lock(streamID)
		defer unlock()
		if err := db.checkTierCursor(streamID, tier); err != nil {
			return err
		}
		entries = append(entries, indexEntry{tierCursorKey(streamID, tier), encodeU64(cursorVersion, flip(*built))})
	}
	if err := db.writeEntries(entries); err != nil {
		return db.writeFailed("write tier", err)
	}
	if err := db.meta.Sync(); err != nil {
		return db.writeFailed("write tier", err)
	}
	db.writeOK()
	if built != nil {
		db.tierVersions.bump(streamID)
	}
	return nil
}

// writeEntries writes entries in order: in one transaction when they fit,
// else in a WriteBatch (the last entry in the last transaction).
func (db *DB) writeEntries(entries []indexEntry) error {
	size := int64(0)
	for _, e := range entries {
		size += int64(len(e.key) + len(e.val) + 16)
	}
	if size < db.meta.MaxBatchSize()*9/10 && len(entries) < int(db.meta.MaxBatchCount())*9/10 {
		return db.meta.Update(func(txn *badger.Txn) error {
			for _, e := range entries {
				if err := txn.Set(e.key, e.val); err != nil {
					return err
				}
			}
			return nil
		})
	}
	wb := db.meta.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range entries {
		if err := wb.Set(e.key, e.val); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// FirstPaneAfter returns a lower bound of the start of the first pane at or
// after from in the stream's tier of granularity tier (0: its base panes),
// from the key index: exact when a key's panes start at or after from;
// ok is false when there is none.
func (db *DB) FirstPaneAfter(ctx context.Context, streamID uint32, tier time.Duration, from int64) (start int64, ok bool, err error) {
	if err := db.enter(); err != nil {
		return 0, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	sp, err := db.space(streamID, tier)
	if err != nil {
		return 0, false, err
	}
	err = db.meta.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = sp.index
		it := txn.NewIterator(opt)
		defer it.Close()
		found := int64(0)
		for it.Seek(headPart(sp.index, partitionOf(from, sp.width))); it.Valid(); it.Next() {
			item := it.Item()
			p, _, okKey := sp.parseIndexKey(item.Key())
			if !okKey {
				return corrupt(item.Key(), "malformed key-index key")
			}
			if ok && p > found {
				return nil // the first partition with data is done
			}
			var lo, hi int64
			if err := item.Value(func(v []byte) error {
				var err error
				lo, hi, err = decodeIndex(item.Key(), v)
				return err
			}); err != nil {
				return err
			}
			if hi < from {
				continue
			}
			if s := max(lo, from); !ok || s < start {
				start, ok = s, true
			}
			found = p
		}
		return nil
	})
	if err != nil {
		return 0, false, db.readFailed("first pane", err)
	}
	return start, ok, nil
}

const cursorVersion = 1 // tier cursor value

// encodeU64 frames one u64 (the tier cursor, a sign-flipped time).
func encodeU64(version byte, x uint64) []byte {
	b := []byte{version}
	b = binary.BigEndian.AppendUint64(b, x)
	return appendCRC(b)
}

func decodeU64(key, v []byte, version byte) (uint64, error) {
	body, err := unframe(key, v, version)
	if err != nil {
		return 0, err
	}
	if len(body) != 8 {
		return 0, corrupt(key, fmt.Sprintf("u64 value body is %d bytes", len(body)))
	}
	return binary.BigEndian.Uint64(body), nil
}

// tierPrefixes are the prefixes of every rollup-tier record of a stream
// (DeleteStream drops them with its panes).
func tierPrefixes(sid uint32) [][]byte {
	return [][]byte{sidPrefix(prefixTierPane, sid), sidPrefix(prefixTierIndex, sid), sidPrefix(prefixTierCursor, sid)}
}
