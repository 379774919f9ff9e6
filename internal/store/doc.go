// Package store persists sketchd's state in Badger: stream specs, panes
// (opaque sketch blobs with their exact counts and applied source
// positions), a per-partition key index and per-stream checkpoints. It is
// the only package that imports Badger.
//
// # Layout
//
// Three Badger databases, "families" (families.go): the final base panes
// in dir, the base panes ingestion still rewrites in dir/open
// (openfam.go), the rest (specs, checkpoints, key indexes, rollup tiers)
// in dir/meta, so that compactions of the panes do not merge the whole
// store at every memtable flush, nor the day's final panes at every
// rewrite of the open ones. Panes are keyed 'P' | stream | partition |
// key | start, with times big-endian and sign-flipped, so one key over a
// time range is one contiguous run of keys per partition and family. A
// partition is a day of a stream's panes by default
// (Options.PartitionSpan, fixed when the stream is created); the key index
// ('K' | stream | partition | key) is partitioned the same way, so
// retention drops whole partitions of both with DropPrefix. The byte-level
// format is in docs/format.md.
//
// # Durability
//
// Badger runs with SyncWrites off; Commit writes a flush's key-index
// entries, panes and checkpoint, each with a WriteBatch (split into
// transactions of at most 15% of MemTableSize) and each synced before the
// next, then moves the panes its watermark made final from open to panes
// (written and synced, then deleted and synced), so a flush is durable
// when Commit returns and any prefix of it is safe after a crash. Values under ValueThreshold (1 MiB: every pane but
// those of exotic specs) stay inline in the LSM tree. Every stored value
// carries
// a CRC32-C; a value that fails it is a *CorruptError for the reads that
// touch it and nothing else.
//
// # Errors
//
// Write failures (Badger errors, disk full, a closed DB) match
// ErrUnavailable and make Healthy fail until a later write succeeds. Reads
// on a closed DB return ErrClosed. Unknown streams are ErrNotFound.
//
// # Resources
//
// DefaultOptions, per family: 8 MiB memtables x 2, L0 5/15, 2 MiB tables
// at every level, uncompressed tables and no block cache, 2 compactors,
// 64 MiB value-log files, values under 1 MiB inline; an 8 MiB index cache
// shared 5:1:2 by panes, open and meta. Under a
// sustained write burst most of the RSS is anonymous memory: Badger's table
// builders, which rewrite the inline values through Go-heap buffers at
// every compaction (the price of keeping values in the LSM tree, see
// Durability), and they release their pooled buffers only after a while
// idle; the rest is file-backed (mmapped tables and logs, reclaimable).
// Key listings keep a memo of the panes they proved (panememo.go), at most
// 4 MiB. Binaries should set GOMEMLIMIT. BenchmarkRSS measures a burst of 200,000
// panes (RSS and its parts, Go heap, store directory, right after and after
// 20 s idle):
//
//	SKETCHD_STORE_RSS=1 go test ./internal/store -run '^$' -bench RSS -benchtime 1x
//
// docs/operations.md has measured figures; the other benchmarks are in
// bench_test.go.
package store
