package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// StreamInfo is a registered stream: its spec, the ID its data is stored
// under, and when it was created.
type StreamInfo struct {
	// ID is assigned by CreateStream, starting at 1, and never reused, so
	// data of a deleted stream can never show up under a new one.
	ID   uint32
	Spec sketchd.Stream
	// Partitions are the data IDs of a partitioned stream's partitions, in
	// partition order (partitions.go); nil when unpartitioned.
	Partitions []uint32
	Created    time.Time // UTC
	// PartitionWidth is the width of the partitions of the stream's base
	// panes, ns: Options.PartitionSpan in whole panes, fixed when the
	// stream is created ('W' key); a day for streams created before it
	// was stored. Tiers keep their own (tierPartitionWidth).
	PartitionWidth int64
	// Alters are the alters applied to it (AlterStream), oldest first.
	Alters []sketchd.Alteration
}

// loadWidth sets info's partition width from its 'W' key, or to a day's
// (partitionWidth) when there is none: the stream predates stored widths.
func loadWidth(txn *badger.Txn, info *StreamInfo) error {
	item, err := txn.Get(partWidthKey(info.ID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		info.PartitionWidth = partitionWidth(info.Spec.Granularity.Std())
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		info.PartitionWidth, err = decodeWidth(item.Key(), v)
		return err
	})
}

// loadStreams reads the registry into memory (Open).
func (db *DB) loadStreams() error {
	return db.meta.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte{prefixStream}
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var info StreamInfo
			err := item.Value(func(v []byte) error {
				var err error
				info, err = decodeStream(item.Key(), v)
				return err
			})
			if err != nil {
				// One bad spec must not keep the service down: skip it.
				db.log.Error("skipping unreadable stream spec", "key", string(item.Key()[1:]), "err", err)
				continue
			}
			if err := loadWidth(txn, &info); err != nil {
				db.log.Error("skipping stream with an unreadable partition width", "stream", info.Spec.Name, "err", err)
				continue
			}
			if err := loadAlters(txn, &info); err != nil {
				db.log.Error("unreadable alter log; the stream's status will not list its alters", "stream", info.Spec.Name, "err", err)
			}
			db.register(info)
		}
		return nil
	})
}

func (db *DB) streamByID(id uint32) (StreamInfo, bool) {
	db.regMu.RLock()
	defer db.regMu.RUnlock()
	info, ok := db.byID[id]
	return info, ok
}

// CreateStream registers spec under a fresh ID and persists it durably. It
// returns ErrExists if spec.Name is taken. The spec is stored as given;
// validating it is the caller's job (the store only needs a name).
func (db *DB) CreateStream(ctx context.Context, spec sketchd.Stream) (StreamInfo, error) {
	if spec.Name == "" {
		return StreamInfo{}, fmt.Errorf("%w: stream name is empty", ErrInvalid)
	}
	if err := db.enterWrite(); err != nil {
		return StreamInfo{}, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return StreamInfo{}, err
	}
	db.adminMu.Lock()
	defer db.adminMu.Unlock()

	var info StreamInfo
	err := db.meta.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(streamKey(spec.Name)); err == nil {
			return ErrExists
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		var last uint32
		item, err := txn.Get(nextIDKey())
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error {
				last, err = decodeU32(item.Key(), v, idVersion)
				return err
			}); err != nil {
				return err
			}
		}
		if uint64(last)+1+uint64(max(spec.Partitions, 0)) > uint64(^uint32(0)) {
			return errors.New("stream IDs exhausted")
		}
		info = StreamInfo{ID: last + 1, Spec: spec, Created: db.opts.Now().UTC(),
			PartitionWidth: spanWidth(spec.Granularity.Std(), db.opts.PartitionSpan)}
		info.Partitions = partitionIDs(info.ID, spec.Partitions)
		val, err := encodeStream(&info)
		if err != nil {
			return err
		}
		if err := txn.Set(nextIDKey(), encodeU32(idVersion, info.lastID())); err != nil {
			return err
		}
		if err := txn.Set(partWidthKey(info.ID), encodeWidth(info.PartitionWidth)); err != nil {
			return err
		}
		return txn.Set(streamKey(spec.Name), val)
	})
	if errors.Is(err, ErrExists) {
		return StreamInfo{}, fmt.Errorf("stream %q: %w", spec.Name, ErrExists)
	}
	if err == nil {
		err = db.meta.Sync()
	}
	if err != nil {
		return StreamInfo{}, db.writeFailed("create stream", err)
	}
	db.writeOK()
	// Re-decode so that the returned spec equals what a reopen gives back.
	if val, err := encodeStream(&info); err == nil {
		if back, err := decodeStream(streamKey(spec.Name), val); err == nil {
			back.PartitionWidth = info.PartitionWidth
			info = back
		}
	}
	db.regMu.Lock()
	db.register(info)
	db.regMu.Unlock()
	return info, nil
}

// Streams returns every registered stream, sorted by name.
func (db *DB) Streams(ctx context.Context) ([]StreamInfo, error) {
	if err := db.enter(); err != nil {
		return nil, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db.regMu.RLock()
	out := make([]StreamInfo, 0, len(db.byName))
	for _, id := range db.byName {
		out = append(out, db.byID[id])
	}
	db.regMu.RUnlock()
	slices.SortFunc(out, func(a, b StreamInfo) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	return out, nil
}

// Stream returns the stream called name, or ErrNotFound.
func (db *DB) Stream(ctx context.Context, name string) (StreamInfo, error) {
	if err := db.enter(); err != nil {
		return StreamInfo{}, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return StreamInfo{}, err
	}
	return db.lookup(name)
}

// lookup returns the registered stream called name, or ErrNotFound.
func (db *DB) lookup(name string) (StreamInfo, error) {
	db.regMu.RLock()
	defer db.regMu.RUnlock()
	id, ok := db.byName[name]
	if !ok {
		return StreamInfo{}, fmt.Errorf("stream %q: %w", name, ErrNotFound)
	}
	return db.byID[id], nil
}

// dropPrefixes deletes every key under prefixes (Badger's DropPrefix,
// which must not run concurrently with itself), in the panes family
// first, then in open (base panes' prefixes), then in meta. It is the one
// way panes are deleted (a move from open keeps the pane: openfam.go): it clears the
// key listings' pane memo (panememo.go) before, and ends its epoch after.
func (db *DB) dropPrefixes(prefixes ...[]byte) error {
	db.dropMu.Lock()
	defer db.dropMu.Unlock()
	db.paneMemo.dropping()
	defer db.paneMemo.dropped()
	var panes, open, meta [][]byte
	for _, p := range prefixes {
		switch {
		case p[0] == prefixPane: // base panes, open or not
			panes, open = append(panes, p), append(open, p)
		case inPanes(p[0]):
			panes = append(panes, p)
		default:
			meta = append(meta, p)
		}
	}
	for _, f := range []struct {
		bdb      *badger.DB
		prefixes [][]byte
	}{{db.panes, panes}, {db.open, open}, {db.meta, meta}} {
		if len(f.prefixes) == 0 {
			continue
		}
		if err := f.bdb.DropPrefix(f.prefixes...); err != nil {
			return err
		}
	}
	return nil
}

// DeleteStream removes a stream: its panes and key index (DropPrefix, which
// frees the disk space), its checkpoint and its spec. The ID is not reused.
// Commits to the stream that start after DeleteStream return ErrNotFound.
// If it fails, the stream is still registered and DeleteStream can be
// retried.
func (db *DB) DeleteStream(ctx context.Context, name string) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	db.adminMu.Lock()
	defer db.adminMu.Unlock()

	db.regMu.Lock()
	id, ok := db.byName[name]
	info := db.byID[id]
	if ok {
		db.unregister(info)
	}
	db.regMu.Unlock()
	if !ok {
		return fmt.Errorf("stream %q: %w", name, ErrNotFound)
	}
	restore := func() {
		db.regMu.Lock()
		db.register(info)
		db.regMu.Unlock()
	}

	prefixes := [][]byte{sidPrefix(prefixEmitCursor, id), backfillKey(id)}
	for _, did := range info.dataIDs() {
		prefixes = append(append(prefixes, tierPrefixes(did)...), sidPrefix(prefixPane, did), sidPrefix(prefixIndex, did), sidPrefix(prefixImportID, did))
	}
	err := db.dropPrefixes(prefixes...)
	if err == nil {
		err = db.meta.Update(func(txn *badger.Txn) error {
			for _, did := range append([]uint32{id}, info.Partitions...) {
				if err := txn.Delete(checkpointKey(did)); err != nil {
					return err
				}
				if err := txn.Delete(changelogKey(did)); err != nil {
					return err
				}
				if err := txn.Delete(restoringKey(did)); err != nil {
					return err
				}
			}
			if err := txn.Delete(partWidthKey(id)); err != nil {
				return err
			}
			if err := txn.Delete(altersKey(id)); err != nil {
				return err
			}
			return txn.Delete(streamKey(name))
		})
	}
	if err == nil {
		err = db.syncAll()
	}
	if err != nil {
		restore()
		return db.writeFailed("delete stream", err)
	}
	db.writeOK()
	db.backfills.forget(id)
	db.forgetRestoring(append([]uint32{id}, info.Partitions...)...)
	for _, sid := range append([]uint32{id}, info.Partitions...) {
		db.opens.forget(sid)
	}
	return nil
}
