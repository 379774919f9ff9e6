package store

import (
	"errors"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// An import (UpdatePane) changes a final pane that a rollup tier may hold
// already. In the import's own transaction, UpdatePane lowers every tier
// cursor that has passed the tier pane containing the changed pane to that
// tier pane's start (rewindTiers): queries, which read the cursors, stop
// serving the stale tier pane at once, and the builder rebuilds from there.
// A builder that read its cursor before the rewind must not write its
// cursor past it: the import marks the tier rewound (in memory), and the
// next cursor write of that tier (WriteTier) finds the mark, clears it and
// refuses with ErrTierRewound; the builder reloads its cursors (it does at
// every pass) and rebuilds. Imports and tier cursor writes of a stream
// hold the stream's tier lock (tierMarks.lock), so one of them sees the
// other's effect. A spurious refusal costs one builder pass.

// ErrTierRewound: an import lowered the tier's cursor since the caller read
// it; read it again (TierCursor) and rebuild from there.
var ErrTierRewound = errors.New("store: rollup tier cursor lowered by an import since it was read")

type tierKey struct {
	sid  uint32
	tier time.Duration
}

// tierMarks are the tiers an import rewound since their last cursor write.
type tierMarks struct {
	locks [16]sync.Mutex // per stream (sid mod 16): imports vs tier cursor writes
	mu    sync.Mutex     // guards m
	m     map[tierKey]bool
}

// lock takes stream sid's tier lock and returns its unlock.
func (s *tierMarks) lock(sid uint32) func() {
	l := &s.locks[sid%uint32(len(s.locks))]
	l.Lock()
	return l.Unlock
}

func (s *tierMarks) mark(k tierKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[tierKey]bool{}
	}
	s.m[k] = true
}

// take clears k's mark and reports whether it was set.
func (s *tierMarks) take(k tierKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.m[k]
	delete(s.m, k)
	return was
}

// readCursor reads a tier cursor in txn; ok is false when there is none.
func readCursor(txn *badger.Txn, key []byte) (end int64, ok bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	err = item.Value(func(v []byte) error {
		u, err := decodeU64(key, v, cursorVersion)
		end, ok = unflip(u), err == nil
		return err
	})
	return end, ok, err
}

// checkTierCursor refuses a cursor write of a tier an import rewound. The
// caller holds the stream's tier lock.
func (db *DB) checkTierCursor(sid uint32, tier time.Duration) error {
	if db.tierRewound.take(tierKey{sid, tier}) {
		return ErrTierRewound
	}
	return nil
}

// rewindTiers lowers, in txn, each tier cursor of spec that has passed the
// tier pane containing the pane starting at start, to that tier pane's
// start.
func (db *DB) rewindTiers(txn *badger.Txn, sid uint32, spec *sketchd.Stream, start int64) error {
	for _, r := range spec.Rollups {
		g := r.Granularity.Std()
		k := tierCursorKey(sid, g)
		cur, ok, err := readCursor(txn, k)
		if err != nil {
			return err
		}
		if u := sketchd.PaneStart(start, int64(g)); ok && cur > u {
			db.tierRewound.mark(tierKey{sid, g})
			if err := txn.Set(k, encodeU64(cursorVersion, flip(u))); err != nil {
				return err
			}
		}
	}
	return nil
}
