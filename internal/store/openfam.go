package store

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// The open family (format 3, families.go) holds the base panes that
// ingestion still rewrites. Commit writes every pane there; once the
// committed watermark makes panes final, settle moves them into the panes
// family, where each is written once. A live stream's commits rewrite
// each open pane every second, so what its memtable flushes and
// compactions merge is a few MB of latest versions, while the panes
// family's day-wide key range takes one write per pane
// (BenchmarkSteadyCommit; docs/operations.md, "The open family").
//
// The rules that keep reads right:
//
//   - A pane stored in both families is read from open: open's copy is
//     never older, since the panes family gets a pane that open holds only
//     by a move (moveOpen), which writes the panes' copy and syncs, then
//     deletes open's and syncs. A crash between leaves two equal copies.
//   - Every other write to the panes family of a base pane (UpdatePane,
//     BackfillPanes) first moves open's copy, so the edit lands on the copy
//     that is read.
//   - openSince: no pane of the stream with start below it is in open. A
//     commit lowers it before it writes, settle raises it after its move,
//     both under the stream's stripe lock. A reader takes open's snapshot,
//     then reads openSince, then takes the panes' snapshot (openView):
//     whatever a move did between, the reader finds each pane in one of
//     the two.

// openMarks is the per-stream openSince and the limit of the last settle.
type openMarks struct {
	mu      sync.RWMutex
	since   map[uint32]int64 // absent: no pane of the stream is in open
	settled map[uint32]int64 // absent: not settled since Open
}

func (m *openMarks) init(since map[uint32]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.since, m.settled = since, map[uint32]int64{}
}

// sinceOf returns the stream's openSince: math.MaxInt64 when open holds
// none of its panes.
func (m *openMarks) sinceOf(sid uint32) int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sinceLocked(sid)
}

// lower makes openSince at most start: call it before writing a pane of
// that start to open. A pane at or before the last settle's limit (final
// when written: its last write) makes the next settle due.
func (m *openMarks) lower(sid uint32, start int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.since[sid]; !ok || start < s {
		m.since[sid] = start
	}
	if last, ok := m.settled[sid]; ok && start <= last {
		delete(m.settled, sid)
	}
}

// settledTo records that every pane of the stream with start <= limit has
// left open.
func (m *openMarks) settledTo(sid uint32, limit int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.since[sid]; ok && s <= limit {
		m.since[sid] = limit + 1
	}
	m.settled[sid] = limit
}

// due reports whether a settle to limit could move panes a settle has not
// moved yet: panes start on multiples of g, so only when limit enters a
// later one.
func (m *openMarks) due(sid uint32, limit, g int64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.sinceLocked(sid) > limit {
		return false
	}
	last, ok := m.settled[sid]
	return !ok || floorDiv(limit, g) > floorDiv(last, g)
}

func (m *openMarks) sinceLocked(sid uint32) int64 {
	if s, ok := m.since[sid]; ok {
		return s
	}
	return math.MaxInt64
}

func (m *openMarks) forget(sid uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.since, sid)
	delete(m.settled, sid)
}

// loadOpenMarks sets every stream's openSince to the oldest start of its
// panes in open (keys only: open holds a few panes per live key).
func (db *DB) loadOpenMarks() error {
	since := map[uint32]int64{}
	err := db.open.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{prefixPane}
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < sidPrefixLen {
				return corrupt(k, "malformed pane key")
			}
			sid := sidOfHead(k)
			_, _, start, ok := baseSpace(sid, 0).parsePaneKey(k)
			if !ok {
				return corrupt(k, "malformed pane key")
			}
			if s, seen := since[sid]; !seen || start < s {
				since[sid] = start
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	db.opens.init(since)
	return nil
}

// routePanes splits a commit's encoded panes (entries, of recs) into those
// for open and those for the panes family, and lowers openSince for the
// former. A pane final under the checkpoint's watermark wm that open does
// not hold (made and finished between two commits: a backlog read in
// catch-up) goes straight to the panes family, instead of to open and
// then moved; one that open holds goes to open, so that open's copy stays
// the newest, and is moved by this commit's settle. The caller holds the
// stream's stripe lock, so no other write to open can come between.
// Without a watermark (route false) every pane goes to open.
func (db *DB) routePanes(sid uint32, spec *sketchd.Stream, wm int64, route bool, recs []sketchd.PaneRecord, entries []indexEntry) (toOpen, toPanes []indexEntry, err error) {
	limit, ok := finalLimit(spec, wm)
	ok = ok && route
	oldest := int64(math.MaxInt64)
	err = db.open.View(func(txn *badger.Txn) error {
		for i, e := range entries {
			if ok && recs[i].Start <= limit {
				_, err := txn.Get(e.key)
				if errors.Is(err, badger.ErrKeyNotFound) {
					toPanes = append(toPanes, e)
					continue
				}
				if err != nil {
					return err
				}
			}
			toOpen = append(toOpen, e)
			oldest = min(oldest, recs[i].Start)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(toOpen) > 0 {
		db.opens.lower(sid, oldest) // before open holds them
	}
	return toOpen, toPanes, nil
}

// finalLimit returns the newest pane start that is final under watermark
// wm (sketchd.Stream.PaneFinalAt); ok is false when no start is.
func finalLimit(spec *sketchd.Stream, wm int64) (limit int64, ok bool) {
	g, end := int64(spec.Granularity), spec.FinalEnd(wm)
	if g < 0 || end < math.MinInt64+g {
		return 0, false
	}
	return end - g, true
}

// settle moves the stream's panes that are final under the committed
// watermark wm from open to the panes family. The caller holds the
// stream's stripe lock.
func (db *DB) settle(sid uint32, spec *sketchd.Stream, wm int64) error {
	limit, ok := finalLimit(spec, wm)
	if !ok || !db.opens.due(sid, limit, max(int64(spec.Granularity), 1)) {
		return nil
	}
	sp := baseSpace(sid, 0)
	var keys [][]byte
	err := db.open.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = sp.pane
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if _, _, start, ok := sp.parsePaneKey(k); ok && start <= limit {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err == nil {
		err = db.moveOpen(keys)
	}
	if err != nil {
		return err
	}
	db.opens.settledTo(sid, limit)
	return nil
}

// moveOpen moves the panes of keys that open holds into the panes family:
// it writes them there, in chunks of about moveChunkBytes read at a time,
// and syncs, then deletes them from open and syncs. Values move as they
// are (a corrupt one stays corrupt, for its reader to report). The caller
// holds the stream's stripe lock.
func (db *DB) moveOpen(keys [][]byte) error {
	var moved [][]byte // keys open held
	for len(keys) > 0 {
		var chunk []indexEntry
		size := 0
		err := db.open.View(func(txn *badger.Txn) error {
			for len(keys) > 0 && size < moveChunkBytes {
				k := keys[0]
				keys = keys[1:]
				item, err := txn.Get(k)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				chunk = append(chunk, indexEntry{k, v})
				size += len(k) + len(v)
			}
			return nil
		})
		if err == nil {
			err = db.writeBatch(db.panes, chunk, false)
		}
		if err != nil {
			return err
		}
		for _, e := range chunk {
			moved = append(moved, e.key)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if err := db.panes.Sync(); err != nil {
		return err
	}
	wb := db.open.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range moved {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if err := db.open.Sync(); err != nil {
		return err
	}
	db.met.settledPanes.Add(float64(len(moved)))
	return nil
}

// moveChunkBytes bounds the values a move holds in memory at once: a
// cluster mirror's restore writes a partition's whole history to open
// (ApplyPanes, in bounded chunks) before the checkpoint that settles it.
const moveChunkBytes = 4 << 20

// openView runs fn with a snapshot of open and the stream's openSince,
// read in that order (see the rules above); fn takes the panes' snapshot
// after.
func (db *DB) openView(sid uint32, fn func(open *badger.Txn, since int64) error) error {
	return db.open.View(func(txn *badger.Txn) error {
		return fn(txn, db.opens.sinceOf(sid))
	})
}

// openPane is a copy of one pane held by open, for a scan to merge;
// owned when val is the pane's alone (openWalk), which the record the scan
// gives out may then take. reused is, instead of a copy, the caller's
// record of the pane, which the stored value still holds
// (ScanPanesReusing), and size that value's length.
type openPane struct {
	key    []byte
	start  int64
	val    []byte
	owned  bool
	reused *sketchd.PaneRecord
	size   int
}

// openPanes appends to dst the panes of key that open holds with
// lo <= start < to, by start ascending, their keys and values copied into
// *arena (it is a Prefix iterator of sp.pane over open's snapshot), or as
// the record reuse gives when the value still holds it (openWalk). The
// arena is reused from key to key: a scan copies a key's open panes (a
// few) into the same memory.
func openPanes(ctx context.Context, dst []openPane, arena *[]byte, it *badger.Iterator, seek *[]byte, sp space, key string, lo, to int64, reuse reuseFunc) ([]openPane, error) {
	err := walkKey(ctx, it, seek, sp, key, lo, to, func(item *badger.Item, k []byte, start int64) error {
		return item.Value(func(v []byte) error {
			if rec := reused(reuse, key, start, v); rec != nil {
				dst = append(dst, openPane{start: start, reused: rec, size: len(v)})
				return nil
			}
			off := len(*arena)
			*arena = append(append(*arena, k...), v...)
			dst = append(dst, openPane{key: (*arena)[off : off+len(k)], start: start, val: (*arena)[off+len(k):]})
			return nil
		})
	})
	return dst, err
}

// sidOfHead is the stream id of a base space's pane head ('P' | sid).
func sidOfHead(head []byte) uint32 { return binary.BigEndian.Uint32(head[1:5]) }
