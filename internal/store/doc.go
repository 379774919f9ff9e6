// Package store persists sketchd's state in Badger: stream specs, panes
// (opaque sketch blobs with their exact counts and applied source
// positions), a per-partition key index and per-stream checkpoints. It is
// the only package that imports Badger.
//
// # Layout
//
// Panes are keyed 'P' | stream | partition | key | start, with times
// big-endian and sign-flipped, so one key over a time range is one
// contiguous run of keys per partition. A partition is about a day of
// panes (W = granularity * ceil(24h / granularity)); the key index
// ('K' | stream | partition | key) is partitioned the same way, so
// retention drops whole partitions of both with DropPrefix. The byte-level
// format is in docs/format.md.
//
// # Durability
//
// Badger runs with SyncWrites off; Commit writes a flush with a WriteBatch
// (split into transactions of at most 15% of MemTableSize), then calls
// db.Sync once, so a flush is durable when Commit returns. Values stay
// inline in the LSM tree (ValueThreshold 1 MiB). Every stored value carries
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
// DefaultOptions: 16 MiB memtables x 2, L0 5/15, 16 MiB block cache, 8 MiB
// index cache, 2 compactors, 64 MiB value-log files, values inline. Measured
// on the 2-core VM (Go 1.26, ext4) by committing 200,000 panes of one 2 KiB
// blob (1,000 keys x 200 minutes, 200 flushes of 1,000 panes, each synced):
//
//	SKETCHD_STORE_RSS=1 go test ./internal/store -run TestReportRSS -v
//
//	write burst: 27-38 s (5,200-7,500 panes/s, 10-15 MB/s of blobs)
//	right after: VmRSS 1.50-1.67 GB = ~1.0 GB anonymous (Go heap: Badger's
//	             table builders while it compacts the inline values; ~470 MB
//	             in use) + ~0.46 GB file-backed (mmapped tables and logs,
//	             reclaimable); store dir 600-660 MB
//	20 s idle:   VmRSS 1.14-1.34 GB, Go heap in use 200-370 MB, dir 566 MB
//	GOMEMLIMIT=400MiB: VmRSS 0.91 GB right after, same throughput
//
// The anonymous part is the price of keeping values in the LSM tree (see
// Durability): every compaction rewrites them through Go-heap buffers.
// Binaries should set GOMEMLIMIT. Benchmarks: see bench_test.go.
package store
