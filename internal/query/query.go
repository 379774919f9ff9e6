package query

import (
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// Target is the stream a query reads.
type Target struct {
	ID   uint32
	Spec sketchd.Stream
	// Watermark is the committed watermark (unix ns): that of the last
	// checkpoint in the store. Windows that end at least allowed lateness
	// before it are final.
	Watermark int64
	// LastCommit is the time of the stream's last commit (unix ns): the
	// stored panes change only with a commit, so results are cached per
	// LastCommit. 0 (nothing committed yet) disables the result cache.
	LastCommit int64
	// Partitions are the store IDs of a partitioned stream's partitions,
	// read as one stream (partitions.go); nil reads ID.
	Partitions []uint32
	// Uncovered are the partitions this instance does not cover: a query
	// of the target is refused (coverage.go).
	Uncovered []int
}

// Query asks for one aggregate over a time range.
type Query struct {
	Aggregate string
	From, To  int64               // unix ns; From is rounded down to a pane, To up to a step
	Where     map[string][]string // dimension -> accepted values (exact); all dimensions must match
	Filters   []Filter            // more where conditions (negation, sets; see ParseWhere), ANDed with Where
	GroupBy   []string            // dimensions kept; nil merges all matching keys
	Step      int64               // ns; 0 = one window over the whole range
	Window    int64               // ns; 0 = Step; wider than Step = sliding
}

// Result is what a query returns: a series of windows per group.
type Result struct {
	Aggregate string
	Kind      sketchd.AggregateKind
	Params    sketch.Params
	From, To  int64 // the range covered, aligned: the first window's start (before the asked from when sliding) to the last's end
	Step      int64
	Window    int64
	Watermark int64
	Keys      int // keys merged
	Panes     int // stored panes merged
	Groups    []Group
	// Resolution says which resolution served each part of the range read
	// (tiers.go): the stream's own panes or a rollup tier's, or neither
	// any more (Span.Expired: retained.go).
	Resolution []Span
	// RetainedFrom is the first pane start the stream's own panes are
	// still kept for (its retention, as of now) when From is before it;
	// sketchd.NoTime otherwise. Before it, only a rollup tier can serve
	// a part (Resolution says which parts it did).
	RetainedFrom int64
}

// Group is the series of one group-by tuple.
type Group struct {
	Key     map[string]string // the group_by dimensions' values
	Windows []Window
}

// Window is one merged window.
type Window struct {
	Start, End int64
	// Final is true when the watermark has passed End by the allowed
	// lateness: no event can change this window any more.
	Final  bool
	Events uint64 // exact count of events in the window
	Panes  int    // stored panes merged into it
	Sketch sketch.Sketch
	// Incomplete is true when part of the window lies in a part of the
	// range the result's Resolution marks Expired: its events there are
	// missing. Expired is true when all of it does.
	Incomplete, Expired bool
	// CacheID is nonzero for a window of a QueryShared result whose Sketch
	// is the window cache's own: every result holding the same CacheID
	// holds the same final window (events, panes, sketch), so what a caller
	// makes of it may be kept under the id.
	CacheID uint64
}
