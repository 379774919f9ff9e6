package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// Reads run in one Badger read transaction (a consistent snapshot of one
// family; a read of the key index and the panes takes the index's first,
// see families.go) and call fn inside it: fn may call other DB methods,
// but Close waits for the read to return. The records handed to fn are
// fresh copies fn may keep.

// paneWidth returns the partition width of a registered stream.
func (db *DB) paneWidth(streamID uint32) (int64, error) {
	sp, err := db.space(streamID, 0)
	return sp.width, err
}

// space returns the pane space of a registered stream: its base panes when
// tier is 0, else those of its rollup tier of that granularity.
func (db *DB) space(streamID uint32, tier time.Duration) (space, error) {
	info, ok := db.streamByID(streamID)
	if !ok {
		return space{}, fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	if tier == 0 {
		return baseSpace(streamID, info.PartitionWidth), nil
	}
	if tier < time.Second {
		return space{}, fmt.Errorf("%w: tier granularity %s", ErrInvalid, tier)
	}
	return tierSpace(streamID, tier), nil
}

// Pane returns one pane; ok is false if it is not stored.
func (db *DB) Pane(ctx context.Context, streamID uint32, key string, start int64) (p sketchd.PaneRecord, ok bool, err error) {
	if err := db.enter(); err != nil {
		return p, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return p, false, err
	}
	w, err := db.paneWidth(streamID)
	if err != nil {
		return p, false, err
	}
	if len(key) > sketchd.MaxKeyLen {
		return p, false, nil
	}
	k := appendPaneKey(nil, streamID, partitionOf(start, w), key, start)
	get := func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if err := decodePaneValue(k, v, &p); err != nil {
				return err
			}
			p.Key, p.Start, ok = key, start, true
			return nil
		})
	}
	err = db.openView(streamID, func(open *badger.Txn, since int64) error {
		if start >= since {
			if err := get(open); err != nil || ok {
				return err
			}
		}
		return db.panes.View(get)
	})
	if err != nil {
		return sketchd.PaneRecord{}, false, db.readFailed("pane", err)
	}
	return p, ok, nil
}

// callbackError marks an error returned by a caller's fn, so that it is
// passed through unwrapped and not counted as a read error.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// finishRead unwraps callback and ctx errors and wraps store errors.
func (db *DB) finishRead(op string, ctx context.Context, err error) error {
	var cb callbackError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cb):
		return cb.err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	}
	return db.readFailed(op, err)
}

// ScanPanes calls fn for every stored pane of the given keys with
// from <= Start < to: key by key in the order given, each key's panes by
// Start ascending. It stops at the first error fn returns and returns that
// error as is; it returns ctx.Err() once ctx is done; a pane whose value is
// corrupt stops the scan with a *CorruptError.
//
// Cost: per key, one seek per partition (day) that holds the key in the
// range, plus one per partition skipped; the panes themselves are one
// contiguous run of keys per partition. The open family's panes of
// openWalkMin keys or more are read in one walk per partition instead
// (openwalk.go).
func (db *DB) ScanPanes(ctx context.Context, streamID uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	return db.ScanTierPanes(ctx, streamID, 0, keys, from, to, fn)
}

// reuseFunc returns the record of key's pane at start that a caller of
// ScanPanesReusing holds from an earlier scan, or nil.
type reuseFunc = func(key string, start int64) *sketchd.PaneRecord

// ScanPanesReusing is ScanPanes for a caller that keeps what it reads and
// reads it again, as a query's open tails are read once per commit: an
// open pane whose stored value still holds the record reuse gives for it
// (byte for byte) is given as that record instead of a copy, so fn
// shares it with the caller and must only read it. With a commit a second,
// a key's open panes but the newest mostly get nothing new, and copying
// them all out of Badger at every commit was an eighth of what the load
// runner's k6 phase allocated (internal/query's tail memo;
// docs/operations.md, "What the query load allocates").
func (db *DB) ScanPanesReusing(ctx context.Context, streamID uint32, keys []string, from, to int64, reuse func(key string, start int64) *sketchd.PaneRecord, fn func(sketchd.PaneRecord) error) error {
	return db.scanPanes(ctx, streamID, 0, keys, from, to, allSlots, false, reuse, fn)
}

// ScanTierPanes is ScanPanes over the panes of the stream's rollup tier of
// granularity tier (0: its base panes).
func (db *DB) ScanTierPanes(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	return db.scanPanes(ctx, streamID, tier, keys, from, to, allSlots, false, nil, fn)
}

// ScanTierPaneSlot is ScanTierPanes for a reader of one aggregate: each
// record holds the sketch of slot only (Sketches is cut after slot, its
// other entries are nil; shorter when the pane predates the slot). A
// query reads one slot; copying every sketch of every pane it scanned was
// most of the bytes a scan allocated (BenchmarkDashboardWhileIngesting in
// internal/query).
func (db *DB) ScanTierPaneSlot(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	if slot < 0 {
		return fmt.Errorf("scan pane slot %d: %w", slot, ErrInvalid)
	}
	return db.scanPanes(ctx, streamID, tier, keys, from, to, slot, false, nil, fn)
}

// ScanTierPaneSlotBorrowed is ScanTierPaneSlot without copying the slot's
// sketch: the record's blob (and its Sketches slice) is Badger's value,
// valid only while fn runs, and fn must keep neither. A query that decodes
// each blob at once (every sketch decoder copies what it keeps) made one
// allocation of a blob's size per pane for nothing: a pane in the cold
// computation of a 24-hour series (BenchmarkFirstSeries in
// internal/query).
func (db *DB) ScanTierPaneSlotBorrowed(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	if slot < 0 {
		return fmt.Errorf("scan pane slot %d: %w", slot, ErrInvalid)
	}
	return db.scanPanes(ctx, streamID, tier, keys, from, to, slot, true, nil, fn)
}

// scanPanes is ScanTierPanes copying every sketch of a pane (slot
// allSlots) or only the one of slot (decodePane); borrow gives fn the
// slot's blob in Badger's value instead of a copy, from inside
// Item.Value.
func (db *DB) scanPanes(ctx context.Context, streamID uint32, tier time.Duration, keys []string, from, to int64, slot int, borrow bool, reuse reuseFunc, fn func(sketchd.PaneRecord) error) error {
	if err := db.enter(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	sp, err := db.space(streamID, tier)
	if err != nil {
		return err
	}
	from = max(from, db.retainedFrom(streamID, tier))
	if to <= from || len(keys) == 0 {
		return nil
	}
	scan := func(open *badger.Iterator, lo int64) error {
		return db.paneFamily(sp).View(func(txn *badger.Txn) error {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false // values are inline; fetch only what is in range
			opt.Prefix = sp.pane
			it := txn.NewIterator(opt)
			defer it.Close()
			r := keyScan{ctx: ctx, it: it, sp: sp, from: from, to: to, slot: slot, borrow: borrow, fn: fn}
			var walked map[string][]openPane // open's panes of every key, read in one walk
			if open != nil && len(keys) >= openWalkMin && partitionOf(to-1, sp.width)-partitionOf(lo, sp.width) < openWalkParts {
				var err error
				if walked, err = openWalk(ctx, open, &r.seek, sp, keys, lo, to, reuse); err != nil {
					return err
				}
			}
			for _, key := range keys {
				if len(key) > sketchd.MaxKeyLen {
					continue // cannot be stored
				}
				r.open, r.arena = r.open[:0], r.arena[:0]
				switch {
				case walked != nil:
					r.open = walked[key]
				case open != nil:
					var err error
					if r.open, err = openPanes(ctx, r.open, &r.arena, open, &r.seek, sp, key, lo, to, reuse); err != nil {
						return err
					}
				}
				if err := r.scanKey(key); err != nil {
					return err
				}
				if r.read >= noteReadEvery {
					db.pages.noteRead(r.read)
					r.read = 0
				}
			}
			db.pages.noteRead(r.read)
			return nil
		})
	}
	if tier != 0 {
		err = scan(nil, 0)
	} else {
		err = db.openView(streamID, func(open *badger.Txn, since int64) error {
			if lo := max(from, since); lo < to {
				opt := badger.DefaultIteratorOptions
				opt.PrefetchValues = false
				opt.Prefix = sp.pane
				it := open.NewIterator(opt)
				defer it.Close()
				return scan(it, lo)
			}
			return scan(nil, 0)
		})
	}
	return db.finishRead("scan panes", ctx, err)
}

// keyScan is one scanPanes' state: its panes iterator and arguments, and
// the open family's panes of the key being scanned, which it merges in by
// start (open's copy wins a start both hold: openfam.go).
type keyScan struct {
	ctx      context.Context
	it       *badger.Iterator
	sp       space
	from, to int64
	slot     int
	borrow   bool
	fn       func(sketchd.PaneRecord) error

	open     []openPane // the key's, by start
	arena    []byte     // their keys and values
	seek     []byte
	sketches [][]byte // the borrowed records' Sketches, reused
	read     int64    // bytes of values visited (both families), not yet noted (pageReleaser.noteRead)
}

// noteReadEvery is how many bytes a scan reads between its notes to the
// page releaser (pagerelease.go).
const noteReadEvery = 1 << 20

// scanKey is ScanPanes for one key: the panes family's panes of the key
// and the open ones (r.open) by start.
func (r *keyScan) scanKey(key string) error {
	if err := r.scanStored(key); err != nil {
		return err
	}
	for i := range r.open {
		if err := r.emitOpen(key, &r.open[i]); err != nil {
			return err
		}
	}
	r.open = r.open[:0]
	return nil
}

// openBefore emits the open panes that start before start and reports
// whether the next one starts at it (emitted too, in place of the stored
// one).
func (r *keyScan) openBefore(key string, start int64) (same bool, err error) {
	n := 0
	for ; n < len(r.open) && r.open[n].start <= start; n++ {
		if err := r.emitOpen(key, &r.open[n]); err != nil {
			return false, err
		}
		same = r.open[n].start == start
	}
	r.open = r.open[n:]
	return same, nil
}

// emitOpen decodes one open pane and calls fn with it.
func (r *keyScan) emitOpen(key string, op *openPane) error {
	r.read += int64(len(op.val) + op.size)
	if op.reused != nil {
		if err := r.fn(*op.reused); err != nil {
			return callbackError{err}
		}
		return nil
	}
	rec := sketchd.PaneRecord{Key: key, Start: op.start}
	var err error
	switch {
	case r.borrow:
		err = decodePaneBorrowed(op.key, op.val, r.slot, &rec, &r.sketches)
	case op.owned && r.slot == allSlots:
		err = decodePaneOwned(op.key, op.val, &rec)
	default:
		err = decodePane(op.key, op.val, r.slot, &rec)
	}
	if err != nil {
		return err
	}
	if err := r.fn(rec); err != nil {
		return callbackError{err}
	}
	return nil
}

// scanStored calls fn for the key's panes in the panes family, merging
// the open ones in as it goes (scanKey emits those after its last).
func (r *keyScan) scanStored(key string) error {
	return walkKey(r.ctx, r.it, &r.seek, r.sp, key, r.from, r.to, func(item *badger.Item, k []byte, start int64) error {
		r.read += item.ValueSize()
		if len(r.open) > 0 {
			same, err := r.openBefore(key, start)
			if err != nil || same {
				return err
			}
		}
		rec := sketchd.PaneRecord{Key: key, Start: start}
		if r.borrow {
			return item.Value(func(v []byte) error {
				if err := decodePaneBorrowed(k, v, r.slot, &rec, &r.sketches); err != nil {
					return err
				}
				if err := r.fn(rec); err != nil {
					return callbackError{err}
				}
				return nil
			})
		}
		if err := item.Value(func(v []byte) error { return decodePane(k, v, r.slot, &rec) }); err != nil {
			return err
		}
		if err := r.fn(rec); err != nil {
			return callbackError{err}
		}
		return nil
	})
}

// walkKey calls visit for each pane of key with from <= start < to that
// it (a Prefix iterator of sp.pane) holds, by start: it walks the key's
// partitions with seeks, skipping partitions that do not hold it. It
// stops at visit's first error and returns it as is.
func walkKey(ctx context.Context, it *badger.Iterator, seek *[]byte, sp space, key string, from, to int64, visit func(item *badger.Item, k []byte, start int64) error) error {
	w := sp.width
	pFirst, pLast := partitionOf(from, w), partitionOf(to-1, w)
	for p := pFirst; p <= pLast; {
		if err := ctx.Err(); err != nil {
			return err
		}
		lo := from
		if p > pFirst {
			lo = partitionStart(p, w)
		}
		*seek = sp.appendPaneKey((*seek)[:0], p, key, lo)
		it.Seek(*seek)
		if !it.Valid() {
			return nil // nothing further in this stream
		}
		prefix := (*seek)[:len(*seek)-8] // head part klen key
		if !bytes.HasPrefix(it.Item().Key(), prefix) {
			// Not in partition p: jump to the partition we landed in.
			landed, ok := keyPartition(it.Item().Key(), len(sp.pane))
			if !ok {
				return nil
			}
			p = max(landed, p+1)
			continue
		}
		if past, err := walkRun(ctx, it, sp, prefix, to, visit); past || err != nil {
			return err
		}
		p++
	}
	return nil
}

// walkRun calls visit for each pane at it, onward, whose pane key has
// prefix (one key's in one partition) and whose start is before to,
// leaving it on the first item after them; past says it stopped at a
// start at or after to (so later partitions hold none in range either).
func walkRun(ctx context.Context, it *badger.Iterator, sp space, prefix []byte, to int64, visit func(item *badger.Item, k []byte, start int64) error) (past bool, err error) {
	for ; it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		item := it.Item()
		k := item.Key()
		if !bytes.HasPrefix(k, prefix) {
			return false, nil
		}
		_, _, start, ok := sp.parsePaneKey(k)
		if !ok {
			return false, corrupt(k, "malformed pane key")
		}
		if start >= to {
			return true, nil
		}
		if err := visit(item, k, start); err != nil {
			return false, err
		}
	}
	return false, nil
}

// Keys calls fn once per distinct key that has at least one stored pane
// with from <= Start < to. It reads the key index, never the panes, except
// where the range cuts the key's span in a partition: there it needs one
// pane of the key in the range, which the store remembers once a listing
// has seen it (panememo.go), so a range listed again (the last hour, once
// per commit) mostly does not seek; else one seek per such (key,
// partition). Keys come partition by partition (oldest first), each
// partition's in byte order, each key at its first appearance. Errors are
// as for ScanPanes.
func (db *DB) Keys(ctx context.Context, streamID uint32, from, to int64, fn func(key string) error) error {
	return db.TierKeys(ctx, streamID, 0, from, to, fn)
}

// TierKeys is Keys over the key index of the stream's rollup tier of
// granularity tier (0: its base panes).
func (db *DB) TierKeys(ctx context.Context, streamID uint32, tier time.Duration, from, to int64, fn func(key string) error) error {
	if err := db.enter(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	sp, err := db.space(streamID, tier)
	if err != nil {
		return err
	}
	w := sp.width
	from = max(from, db.retainedFrom(streamID, tier))
	if to <= from {
		return nil
	}
	pFirst, pLast := partitionOf(from, w), partitionOf(to-1, w)
	var seen map[string]struct{}
	if pLast > pFirst {
		seen = map[string]struct{}{}
	}
	err = db.meta.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = sp.index
		it := txn.NewIterator(opt)
		defer it.Close()
		probe := newPaneProbe(db, sp)
		defer probe.close()
		for it.Seek(headPart(sp.index, pFirst)); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			p, kb, ok := sp.parseIndexKey(item.Key())
			if !ok {
				return corrupt(item.Key(), "malformed key-index key")
			}
			if p > pLast {
				return nil
			}
			if seen != nil {
				if _, dup := seen[string(kb)]; dup {
					continue
				}
			}
			var lo, hi int64
			verr := item.Value(func(v []byte) error {
				var err error
				lo, hi, err = decodeIndex(item.Key(), v)
				return err
			})
			var ce *CorruptError
			if errors.As(verr, &ce) {
				// Fall back to the panes: the whole partition.
				db.met.readError(verr)
				db.log.Warn("corrupt key-index entry; checking panes", "err", verr)
				lo, hi = partitionStart(p, w), partitionStart(p+1, w)-1
			} else if verr != nil {
				return verr
			}
			if hi < from || lo >= to {
				continue
			}
			if (lo < from || hi >= to || ce != nil) && !probe.has(p, string(kb), max(lo, from), hi, to) {
				continue // the range cuts the key's span and holds none of its panes
			}
			key := string(kb)
			if seen != nil {
				seen[key] = struct{}{}
			}
			if err := fn(key); err != nil {
				return callbackError{err}
			}
		}
		return nil
	})
	return db.finishRead("keys", ctx, err)
}
