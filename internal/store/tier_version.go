package store

import "sync"

// tierVersions count, per stream, the changes of its rollup tiers'
// cursors: built further (WriteTier), lowered (an import) or dropped (an
// alter that removes a tier, ResetTiers). Which parts of a range a query serves from a tier follows
// the cursors, which the builder moves in the background, between two
// commits; a caller that keeps answers from one commit to the next keys
// them by TierVersion too, or an answer kept before the move names the
// resolution of before it (and a t-digest's values, merged from other
// panes, may differ within its rank error). Each count moves after its
// change is written, so an answer computed under a count read after it
// reads the new cursor.
type tierVersions struct {
	mu sync.Mutex
	m  map[uint32]uint64
}

func (v *tierVersions) bump(sid uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[uint32]uint64{}
	}
	v.m[sid]++
}

// TierVersion returns the count of changes of the stream's rollup tier
// cursors since the store was opened (tierVersions); it moves only after
// a change is written.
func (db *DB) TierVersion(streamID uint32) uint64 {
	db.tierVersions.mu.Lock()
	defer db.tierVersions.mu.Unlock()
	return db.tierVersions.m[streamID]
}
