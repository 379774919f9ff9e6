package store

import (
	"time"

	"github.com/sketchd/sketchd"
)

// retainedFrom returns the start of the stream's oldest pane within its
// retention as of now: panes that ended longer than Retention ago are not
// read (ScanPanes, Keys), whether or not the partition that holds them was
// dropped yet (retention drops whole partitions, see runRetention).
// sketchd.NoTime when the stream keeps everything, and for a rollup tier
// (tier > 0), which keeps its own retention.
func (db *DB) retainedFrom(streamID uint32, tier time.Duration) int64 {
	if tier != 0 {
		return sketchd.NoTime
	}
	info, ok := db.streamByID(streamID)
	r := info.Spec.Retention.Std()
	if !ok || r <= 0 {
		return sketchd.NoTime
	}
	g := int64(info.Spec.Granularity.Std())
	if g <= 0 {
		return sketchd.NoTime
	}
	// A pane [s, s+g) is kept while s+g > now-r; the first such s is the
	// start of the pane holding now-r.
	return sketchd.PaneStart(db.opts.Now().UnixNano()-int64(r), g)
}

// UpdateFrom returns the first pane start UpdatePane accepts for the
// stream: that of retainedFrom, the first pane reads return.
func (db *DB) UpdateFrom(streamID uint32) int64 {
	return db.retainedFrom(streamID, 0)
}
