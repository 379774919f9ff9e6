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
	if !ok {
		return sketchd.NoTime
	}
	return horizon(db.opts.Now().UnixNano(), info.Spec.Retention.Std(), int64(info.Spec.Granularity.Std()))
}

// RetainedFrom returns the first pane start the stream's retention keeps
// as of now, in its base panes (tier 0: retainedFrom, where their reads
// start) or in its rollup tier of granularity tier (by the tier's own
// retention: its panes are dropped whole partitions at a time, so some
// before it may still be read until the next retention pass). Before it,
// what a query answers is missing its events. sketchd.NoTime when that
// retention keeps everything, for an unknown stream and for a tier the
// stream does not have.
func (db *DB) RetainedFrom(streamID uint32, tier time.Duration) int64 {
	if tier == 0 {
		return db.retainedFrom(streamID, 0)
	}
	info, ok := db.streamByID(streamID)
	if !ok {
		return sketchd.NoTime
	}
	for _, r := range info.Spec.Rollups {
		if r.Granularity.Std() == tier {
			return horizon(db.opts.Now().UnixNano(), r.Retention.Std(), int64(tier))
		}
	}
	return sketchd.NoTime
}

// horizon is the start of the first pane of width g that retention r
// keeps at now: that of the pane holding now - r (a pane [s, s+g) is kept
// while s+g > now-r); sketchd.NoTime when r or g is not positive.
func horizon(now int64, r time.Duration, g int64) int64 {
	if r <= 0 || g <= 0 {
		return sketchd.NoTime
	}
	return sketchd.PaneStart(now-int64(r), g)
}

// UpdateFrom returns the first pane start UpdatePane accepts for the
// stream: that of retainedFrom, the first pane reads return.
func (db *DB) UpdateFrom(streamID uint32) int64 {
	return db.retainedFrom(streamID, 0)
}
