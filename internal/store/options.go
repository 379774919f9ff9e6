package store

import (
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/sketchd/sketchd/internal/defaults"
)

// Options tunes the store. The zero value of every field means "the value
// DefaultOptions gives it", so Options{} and DefaultOptions() open the same
// store; negative values switch a feature off where a field says so, and
// take the default elsewhere.
//
// The defaults target 2 cores and a few hundred MB of RSS (see the package
// doc for the measured figure); Badger's own defaults (64 MB memtables x 5,
// 256 MB block cache, 1 GB value-log files) roughly double the RSS.
type Options struct {
	// MemTableSize is the size of one memtable. 0 = 8 MiB. It also caps one
	// Badger transaction at 15% of it (1.2 MiB by default): Commit splits a
	// flush into as many transactions as it needs. An inline value (under
	// ValueThreshold, 1 MiB) must fit in one; a larger one is written to the
	// value log and costs the transaction a pointer (MaxPaneEntryBytes).
	// Each flushed memtable is one L0 table, built in a Go-heap buffer about
	// 3x its size that Badger keeps pooled (up to 8): 16 MiB memtables held
	// 232 MB of them at the load runner's peak (docs/operations.md).
	MemTableSize int64
	// NumMemtables is how many memtables may be held in memory. 0 = 2.
	NumMemtables int
	// NumLevelZeroTables is the L0 table count that starts compaction.
	// 0 = 5 (Badger's default; 2 stalled writes twice as often in the
	// commit benchmark).
	NumLevelZeroTables int
	// NumLevelZeroTablesStall is the L0 table count that stalls writes.
	// 0 = 15.
	NumLevelZeroTablesStall int
	// BlockCacheSize is the block cache, and whether new tables are
	// compressed. 0 = -1; negative = tables uncompressed, no block cache
	// (the default: reads come straight from the mapped tables, with no
	// decompression buffer per block read, and a table builder holds one
	// copy of its table instead of the raw and the compressed blocks: in
	// the load runner this cut query p99 under 1,000 req/s by a third to a
	// half and Badger's allocations during it from 1.07 to 0.29 GB, for
	// about twice the disk and the file-backed RSS, docs/operations.md);
	// positive =
	// Snappy-compressed tables with a block cache of that size for the
	// whole store, shared as IndexCacheSize is (Badger needs one to
	// decompress). Tables record their own compression, so either setting
	// reads what the other wrote.
	BlockCacheSize int64 `default:"keep-negative"`
	// IndexCacheSize is the table-index and bloom-filter cache of the
	// whole store: the panes family gets 5/8 of it, open 1/8, meta 2/8
	// (families.go). 0 = 8 MiB; negative = keep every index in memory
	// (Badger's default).
	IndexCacheSize int64 `default:"keep-negative"`
	// NumCompactors is the number of compaction goroutines. 0 = 2 (Badger
	// refuses 1, so 1 is raised to 2).
	NumCompactors int
	// BaseTableSize is the size of one LSM table written by a compaction.
	// 0 = 2 MiB (Badger's default).
	BaseTableSize int64
	// TableSizeMultiplier grows BaseTableSize per level below Badger's
	// base level. 0 = 1: every compaction writes tables of BaseTableSize.
	// Badger's 2 made deeper tables 8-64 MiB, and each table builder keeps
	// its allocator (up to 2x the table plus the compressed copy) in a pool
	// of 8 that a steady write load never empties: with it the builders
	// held 544 MB of heap at the load runner's peak (docs/operations.md).
	TableSizeMultiplier int
	// PartitionSpan is how much time one partition of a NEW stream's base
	// panes covers (rounded up to whole panes; StreamInfo.PartitionWidth).
	// 0 = a day. Pane keys are key-major within a partition, so a live
	// stream's flushes touch every key's range of the newest partition and
	// Badger's level-0 compactions merge with all of that partition's
	// tables below: a narrower partition keeps those compactions smaller,
	// but a key listing over a range that spans two partitions dedupes
	// keys in memory (the load runner's 300,000-key "last hour" refusal:
	// 159 ms and 40 MB with an hour, 22-50 ms and 10-18 MB with a day;
	// docs/operations.md). Existing streams keep the width they were
	// created with.
	PartitionSpan time.Duration
	// ValueLogFileSize is the size of one value-log file. 0 = 64 MiB.
	ValueLogFileSize int64
	// ValueThreshold is the value size from which Badger moves a value out
	// of the LSM tree into the value log. 0 = 1 MiB (Badger's maximum), so
	// sketches stay inline in the LSM tree, where an unsynced crash cannot
	// leave a pointer to missing value-log data (badger#1954). It is
	// lowered to the transaction cap if that is smaller.
	ValueThreshold int64
	// GCInterval is how often the background loop runs value-log GC.
	// 0 = 5 minutes; negative = never.
	GCInterval time.Duration `default:"keep-negative"`
	// GCDiscardRatio is the discard ratio passed to RunValueLogGC. 0 = 0.5.
	GCDiscardRatio float64
	// RetentionInterval is how often the background loop drops every
	// stream's partitions older than its spec's Retention. 0 = 5 minutes;
	// negative = never (DropBefore still works).
	RetentionInterval time.Duration `default:"keep-negative"`
	// BuilderDrainInterval is how often the store empties Badger's pool of
	// table-builder allocators (builders.go), which otherwise keeps up to 8
	// of them, each as large as the largest table it built. 0 = 1 second;
	// negative = never (Badger's own pooling).
	BuilderDrainInterval time.Duration `default:"keep-negative"`
	// TablePagesInterval is how often the store releases the pages of its
	// LSM tables, written or read since the last time, from the process's
	// resident set (tablepages.go; Linux only): every twentieth of it
	// while Badger compacts, and sooner when the process's file pages grow
	// fast or queries read many tables (pagerelease.go). 0 = 500 ms;
	// negative = never (the pages stay mapped until the kernel reclaims
	// them).
	TablePagesInterval time.Duration `default:"keep-negative"`
	// TablePagesTarget is how much resident file memory the process may
	// hold (/proc/self/statm: its binary, the tables' pages, memtable
	// logs, whatever else it maps) before the loop releases the tables'
	// pages: under it the loop leaves them mapped, over it the passes run
	// as TablePagesInterval says, and a burst past it by 16 MiB is
	// released at the next tick (pagerelease.go). Every pass makes the
	// queries and compactions fault the pages they read again: passes
	// regardless of the process's file pages took 11% of sketchd's CPU in
	// the load runner's vegeta phase, and those faults another 7%
	// (docs/operations.md, "Table pages"). 0 = no target: every pass runs
	// whatever the process holds. sketchd sets its memory limit's share
	// for mapped files (defaults.MemorySplit.Files).
	TablePagesTarget int64
	// InMemory keeps everything in memory and ignores dir. For tests only:
	// nothing survives Close, Sync is a no-op and value-log GC is skipped.
	InMemory bool
	// Now is the clock of the retention loop and of StreamInfo.Created.
	// nil = time.Now. The background goroutine calls it.
	Now func() time.Time
}

// DefaultOptions returns the options for 2 cores and a few hundred MB.
func DefaultOptions() Options {
	return Options{
		MemTableSize:            8 << 20,
		NumMemtables:            2,
		NumLevelZeroTables:      5,
		NumLevelZeroTablesStall: 15,
		BlockCacheSize:          -1,
		IndexCacheSize:          8 << 20,
		NumCompactors:           2,
		BaseTableSize:           2 << 20,
		TableSizeMultiplier:     1,
		PartitionSpan:           24 * time.Hour,
		ValueLogFileSize:        64 << 20,
		ValueThreshold:          1 << 20,
		GCInterval:              5 * time.Minute,
		GCDiscardRatio:          0.5,
		RetentionInterval:       5 * time.Minute,
		BuilderDrainInterval:    time.Second,
		TablePagesInterval:      500 * time.Millisecond,
		Now:                     time.Now,
	}
}

// withDefaults replaces unset fields by their defaults.
func (o Options) withDefaults() Options {
	o = defaults.Fill(o, DefaultOptions())
	if o.NumCompactors == 1 {
		o.NumCompactors = 2
	}
	if maxBatch := o.MemTableSize * 15 / 100; o.ValueThreshold > maxBatch {
		o.ValueThreshold = maxBatch
	}
	return o
}

// badgerOptions maps o (with defaults applied) to Badger's options.
func (o Options) badgerOptions(dir string, lg badger.Logger) badger.Options {
	var bo badger.Options
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	} else {
		bo = badger.DefaultOptions(dir)
	}
	bo = bo.
		WithLogger(lg).
		// Group commit: Commit calls db.Sync once per flush instead.
		WithSyncWrites(false).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(o.NumMemtables).
		WithNumLevelZeroTables(o.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(o.NumLevelZeroTablesStall).
		WithNumCompactors(o.NumCompactors).
		WithBaseTableSize(o.BaseTableSize).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithValueThreshold(o.ValueThreshold).
		WithNumVersionsToKeep(1).
		// One committer per stream, and streams never share keys.
		WithDetectConflicts(false)
	bo.TableSizeMultiplier = o.TableSizeMultiplier // no With method
	if o.BlockCacheSize < 0 {
		bo = bo.WithBlockCacheSize(0).WithCompression(options.None)
	} else {
		bo = bo.WithBlockCacheSize(o.BlockCacheSize)
	}
	if o.IndexCacheSize < 0 {
		bo = bo.WithIndexCacheSize(0)
	} else {
		bo = bo.WithIndexCacheSize(o.IndexCacheSize)
	}
	return bo
}
