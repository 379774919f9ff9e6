package sketchd

import (
	"errors"
	"math"
	"time"
)

// NoTime is the watermark and the max event time of a stream before its
// first event: below every event time.
const NoTime = math.MinInt64

// Sentinel errors shared across packages; callers test with errors.Is.
var (
	// ErrNotFound: no stream (or other named thing) of that name.
	ErrNotFound = errors.New("not found")
	// ErrExists: a stream of that name already exists.
	ErrExists = errors.New("already exists")
	// ErrUnavailable: the store (or NATS) cannot serve the request now.
	ErrUnavailable = errors.New("unavailable")
	// ErrCorrupt: a stored value fails its checksum or does not parse. The
	// store's corrupt-value errors match it; only the reads that touch the
	// value fail.
	ErrCorrupt = errors.New("corrupt value")
)

// StreamStatus is a stream's spec and live state.
type StreamStatus struct {
	ID      uint32    `json:"id"`
	Spec    Stream    `json:"spec"`
	Created time.Time `json:"created"`
	// State is "running", "starting" or "failed" (see Error).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Alters lists the alters applied since creation (PATCH), oldest
	// first.
	Alters []Alteration `json:"alters,omitempty"`
	// Backfill is the stream's last backfill (PATCH with backfill), if
	// any; State is "backfilling" while it runs.
	Backfill *BackfillStatus `json:"backfill,omitempty"`

	// Watermark and MaxEventTime are live (in memory), unix ns; NoTime
	// before the first event.
	Watermark    int64 `json:"watermark"`
	MaxEventTime int64 `json:"max_event_time"`
	// CommittedWatermark is the watermark of the last durable checkpoint:
	// queries read the store as of it.
	CommittedWatermark int64     `json:"committed_watermark"`
	LastCommit         time.Time `json:"last_commit"`
	Counters           Counters  `json:"counters"`
	OpenPanes          int64     `json:"open_panes"`
	EvictedEarly       uint64    `json:"evicted_early"`
	// Dropped counts core NATS messages the client dropped (slow consumer).
	Dropped uint64 `json:"dropped"`
	// Pending is the JetStream consumer's count of messages not yet
	// delivered; AckFloor is its ack floor stream sequence.
	Pending  uint64 `json:"pending"`
	AckFloor uint64 `json:"ack_floor"`
	// Rollups is the build progress of each rollup tier, in spec order.
	Rollups []RollupStatus `json:"rollups,omitempty"`
	// Emit is the progress of each emit target, in spec order.
	Emit []EmitStatus `json:"emit,omitempty"`
	// Partitions are the store IDs of a partitioned stream's partitions,
	// in partition order; queries merge them (nil when unpartitioned).
	Partitions []uint32 `json:"-"`
	// Coverage is the committed progress of each partition, in partition
	// order (one entry, partition 0, when unpartitioned): what answers
	// report they cover.
	Coverage []PartitionState `json:"-"`
}

// PartitionState is one partition's progress as of its last commit.
type PartitionState struct {
	Partition int
	// PositionSeq is the JetStream sequence up to which the partition's
	// input is committed (0 before the first commit, and for core NATS).
	PositionSeq uint64
	// Watermark is the partition's committed watermark; NoTime before its
	// first event.
	Watermark int64
	// LastCommit is the time of its last commit; zero before the first.
	LastCommit time.Time
	// Uncovered: this instance does not hold the partition's state whole
	// (a cluster mirror's first restore of it is incomplete), so answers
	// cannot cover it and queries are refused (coverage.go). A single node
	// covers every partition: false.
	Uncovered bool
	// Ownership is who owns the partition and how far this instance's
	// copy may lag, in cluster mode; nil on a single node (coverage.go).
	Ownership *PartitionOwnership
}
