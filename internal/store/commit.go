package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// Commit writes a flush (its panes and checkpoint; not its Token or Gen) and makes it durable (db.Sync) before it returns,
// so the caller may ack the source once it returns nil.
//
// Write order: key-index entries (meta family, synced when there are any),
// then panes in the order given (open family, synced; a pane already final
// under the checkpoint's watermark that open does not hold goes to the
// panes family instead, synced: routePanes), then the
// checkpoint (meta, synced), each in as many Badger transactions as its
// size needs (a transaction holds at most 15% of MemTableSize), then the
// panes the checkpoint's watermark made final are moved from open to the
// panes family (openfam.go). If Commit
// fails or the process or the OS dies inside it, any prefix of that
// sequence may be stored: the checkpoint is never trusted beyond what it
// covers, and a replay skips what each pane's Applied already contains. ctx is only
// checked before writing starts; a started commit runs to the end.
//
// Errors: ErrNotFound (unknown stream), ErrInvalid (a key longer than
// sketchd.MaxKeyLen or a pane larger than MaxPaneEntryBytes and one
// transaction; nothing is written), and ErrUnavailable (wrapping the cause) for every write failure,
// including a closed DB.
func (db *DB) Commit(ctx context.Context, streamID uint32, f sketchd.Flush) error {
	return db.commit(ctx, streamID, f, commitOpts{})
}

// MaxPaneEntryBytes is the largest pane (key and value) Commit accepts
// whatever the memtable size: 90% of 15% of 16 MiB, the cap when memtables
// were 16 MiB, which sketchd.MaxPaneSketchBytes (2 MiB, plus key and
// header) is sized for. A value of ValueThreshold (1 MiB) or more goes to
// Badger's value log, where it costs its transaction a 14-byte pointer, so
// smaller memtables still take it; a smaller value is inline and fits the
// 15% of any memtable of at least 8 MiB.
const MaxPaneEntryBytes = (16 << 20) * 15 / 100 * 9 / 10

// maxPaneEntry is the largest pane Commit accepts: MaxPaneEntryBytes when
// every inline pane (value under ValueThreshold, longest key) fits 90% of
// a transaction, else 90% of a transaction.
func (db *DB) maxPaneEntry() int64 {
	txn := db.open.MaxBatchSize() * 9 / 10
	if db.open.Opts().ValueThreshold+int64(paneKeyLen(sketchd.MaxKeyLen)) <= txn {
		return max(txn, MaxPaneEntryBytes)
	}
	return txn
}

// commitOpts vary Commit for the cluster changelog (changelog.go).
type commitOpts struct {
	panesOnly bool    // write no checkpoint (ApplyPanes)
	clSeq     *uint64 // after the checkpoint, record this changelog sequence (CommitChangelog)
}

// commit is Commit, varied by o.
func (db *DB) commit(ctx context.Context, streamID uint32, f sketchd.Flush, o commitOpts) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	began := time.Now()

	cpVal, err := db.checkFlush(&f, o)
	if err != nil {
		return err
	}

	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	// Checked under dropMu: DeleteStream unregisters before it drops.
	info, ok := db.streamByID(streamID)
	if !ok {
		return fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	stripe := &db.stripes[streamID%uint32(len(db.stripes))]
	stripe.Lock()
	defer stripe.Unlock()

	sp := baseSpace(streamID, info.PartitionWidth)
	index, err := db.indexUpdates(sp, f.Panes)
	if err != nil {
		return db.commitFailed(err)
	}

	written := len(cpVal)
	for _, e := range index {
		written += len(e.key) + len(e.val)
	}
	// Key index, panes, checkpoint: each step durable before the next
	// (families.go), so a pane is never stored without its index entry
	// and the checkpoint never ahead of its panes.
	if err := db.writeBatch(db.meta, index, !o.panesOnly && len(index) > 0); err != nil {
		return db.commitFailed(err)
	}
	panes, n := encodePanes(streamID, sp.width, f.Panes)
	written += n
	// ApplyPanes has no watermark: its panes all go to open.
	toOpen, toPanes, err := db.routePanes(streamID, &info.Spec, f.Checkpoint.Watermark, !o.panesOnly, f.Panes, panes)
	if err != nil {
		return db.commitFailed(err)
	}
	// ApplyPanes syncs nothing: the next CommitChangelog syncs them all.
	if err := db.writeBatch(db.open, toOpen, !o.panesOnly); err != nil {
		return db.commitFailed(err)
	}
	if err := db.writeBatch(db.panes, toPanes, len(toPanes) > 0); err != nil {
		return db.commitFailed(err)
	}
	if err := db.writeBatch(db.meta, lastEntries(streamID, cpVal, o), !o.panesOnly); err != nil {
		return db.commitFailed(err)
	}
	if !o.panesOnly {
		// The flush is durable: a failed move is the next commit's to
		// redo (settle is due until it succeeds), not this one's error.
		if err := db.settle(streamID, &info.Spec, f.Checkpoint.Watermark); err != nil {
			db.met.settleErrors.Inc()
			db.log.Warn("moving final panes out of the open family failed; the next commit retries", "stream_id", streamID, "err", err)
		}
	}
	db.writeOK()
	db.met.commitDuration.Observe(time.Since(began).Seconds())
	db.met.commitPanes.Add(float64(len(f.Panes)))
	db.met.commitBytes.Add(float64(written))
	return nil
}

// checkFlush checks that every pane of f fits one Badger entry and
// encodes its checkpoint (none with panesOnly): a flush that cannot be
// stored is refused before anything is written.
func (db *DB) checkFlush(f *sketchd.Flush, o commitOpts) (cpVal []byte, err error) {
	maxEntry := db.maxPaneEntry()
	for i := range f.Panes {
		p := &f.Panes[i]
		if len(p.Key) > sketchd.MaxKeyLen {
			return nil, fmt.Errorf("%w: pane %d: key is %d bytes, max %d", ErrInvalid, i, len(p.Key), sketchd.MaxKeyLen)
		}
		if n := int64(paneKeyLen(len(p.Key)) + paneValueLen(p)); n > maxEntry {
			return nil, fmt.Errorf("%w: pane %d is %d bytes, max %d (raise MemTableSize)", ErrInvalid, i, n, maxEntry)
		}
	}
	if o.panesOnly {
		return nil, nil
	}
	if cpVal, err = encodeCheckpoint(&f.Checkpoint); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %w", ErrInvalid, err)
	}
	return cpVal, nil
}

// encodePanes returns the stored key and value of each pane, and their
// bytes. One arena holds them all: WriteBatch keeps the slices until it
// flushes.
func encodePanes(streamID uint32, width int64, ps []sketchd.PaneRecord) ([]indexEntry, int) {
	total := 0
	for i := range ps {
		total += paneKeyLen(len(ps[i].Key)) + paneValueLen(&ps[i])
	}
	arena := make([]byte, 0, total)
	out := make([]indexEntry, len(ps))
	for i := range ps {
		p := &ps[i]
		off := len(arena)
		arena = appendPaneKey(arena, streamID, partitionOf(p.Start, width), p.Key, p.Start)
		k := arena[off:len(arena):len(arena)]
		off = len(arena)
		arena = appendPaneValue(arena, p)
		out[i] = indexEntry{k, arena[off:len(arena):len(arena)]}
	}
	return out, total
}

// lastEntries are what a commit writes last into meta: the checkpoint
// (none with panesOnly) and the changelog position it read up to (cluster
// mode).
func lastEntries(streamID uint32, cpVal []byte, o commitOpts) []indexEntry {
	var last []indexEntry
	if cpVal != nil {
		last = append(last, indexEntry{checkpointKey(streamID), cpVal})
	}
	if o.clSeq != nil {
		last = append(last, indexEntry{changelogKey(streamID), encodeU64(changelogVersion, *o.clSeq)})
	}
	return last
}

// writeBatch writes entries into one family in order (as many
// transactions as their size needs) and, if sync, makes the family
// durable.
func (db *DB) writeBatch(bdb *badger.DB, entries []indexEntry, sync bool) error {
	if len(entries) > 0 {
		wb := bdb.NewWriteBatch()
		defer wb.Cancel()
		for _, e := range entries {
			if err := wb.Set(e.key, e.val); err != nil {
				return err
			}
		}
		if err := wb.Flush(); err != nil {
			return err
		}
	}
	if sync {
		return bdb.Sync()
	}
	return nil
}

func (db *DB) commitFailed(err error) error {
	db.met.commitErrors.Inc()
	return db.writeFailed("commit", err)
}

type indexEntry struct{ key, val []byte }

// indexUpdates returns the key-index entries the panes add or widen. An
// index value holds the [min, max] of the key's pane starts in the
// partition; it only ever widens (panes are only removed with their whole
// partition), so an entry is written only when the flush widens it.
func (db *DB) indexUpdates(sp space, panes []sketchd.PaneRecord) ([]indexEntry, error) {
	w := sp.width
	type pk struct {
		part int64
		key  string
	}
	type span struct{ lo, hi int64 }
	spans := make(map[pk]span, len(panes))
	order := make([]pk, 0, len(panes))
	for i := range panes {
		p := &panes[i]
		k := pk{partitionOf(p.Start, w), p.Key}
		s, ok := spans[k]
		if !ok {
			order = append(order, k)
			s = span{p.Start, p.Start}
		}
		s.lo, s.hi = min(s.lo, p.Start), max(s.hi, p.Start)
		spans[k] = s
	}
	var out []indexEntry
	err := db.meta.View(func(txn *badger.Txn) error {
		for _, k := range order {
			s := spans[k]
			ik := sp.indexKey(k.part, k.key)
			item, err := txn.Get(ik)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				var lo, hi int64
				verr := item.Value(func(v []byte) error {
					var err error
					lo, hi, err = decodeIndex(ik, v)
					return err
				})
				var ce *CorruptError
				if errors.As(verr, &ce) {
					// Rewrite it conservatively: the whole partition.
					db.log.Warn("rewriting corrupt key-index entry", "err", verr)
					db.met.readError(verr)
					lo, hi = partitionStart(k.part, w), partitionStart(k.part+1, w)-1
				} else if verr != nil {
					return verr
				}
				if lo <= s.lo && s.hi <= hi {
					continue // already covered
				}
				s.lo, s.hi = min(s.lo, lo), max(s.hi, hi)
			}
			out = append(out, indexEntry{ik, encodeIndex(s.lo, s.hi)})
		}
		return nil
	})
	return out, err
}

// Checkpoint returns the stream's last committed checkpoint; ok is false if
// it has none yet.
func (db *DB) Checkpoint(ctx context.Context, streamID uint32) (cp sketchd.Checkpoint, ok bool, err error) {
	if err := db.enter(); err != nil {
		return cp, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return cp, false, err
	}
	if _, known := db.streamByID(streamID); !known {
		return cp, false, fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	err = db.meta.View(func(txn *badger.Txn) error {
		var err error
		cp, ok, err = readCheckpoint(txn, streamID)
		return err
	})
	if err != nil {
		return sketchd.Checkpoint{}, false, db.readFailed("checkpoint", err)
	}
	return cp, ok, nil
}

// readCheckpoint reads the stream's checkpoint in txn; ok is false if it
// has none yet.
func readCheckpoint(txn *badger.Txn, streamID uint32) (cp sketchd.Checkpoint, ok bool, err error) {
	item, err := txn.Get(checkpointKey(streamID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, err
	}
	err = item.Value(func(v []byte) error {
		cp, err = decodeCheckpoint(item.Key(), v)
		return err
	})
	return cp, err == nil, err
}
