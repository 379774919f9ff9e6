// Package sketch implements sketchd's four mergeable sketch kinds — HLL
// (distinct count), CountMin (frequencies and heavy hitters), TDigest
// (quantiles) and Reservoir (bottom-k sample) — with their error bounds and
// one versioned, checksummed wire format.
//
// It is pure computation: no I/O, no clock, no goroutines, no global state.
//
// # Concurrency
//
// No sketch is safe for concurrent use; the owner serializes all calls on a
// sketch, including the read-looking ones (HLL.Estimate caches its result).
// Merge(other), MergeAll and MergeMany only read their arguments, so a
// sealed sketch may be the argument of merges running concurrently in
// several goroutines as long as nothing writes it meanwhile. Clone returns a
// fully independent copy (no shared RNG or buffers: no kind uses an RNG).
//
// # Determinism
//
// Every sketch's state is a deterministic function of its sequence of
// inserts and merges, and Decode(AppendBinary(s)) continues exactly as s
// would (same answers and, except for HLL, same bytes): crash replay gives
// the state of an uninterrupted run. Queries never change later answers.
// CMS, t-digest and reservoir encodings are canonical; HLL encodings are not
// (compare HLLs by Estimate).
//
// # Small panes
//
// Most (key, pane) pairs see a handful of events, so every kind starts
// small and exact: HLL in the library's sparse mode, CountMin as an exact
// item→count map (until it would outgrow the table), TDigest as a buffer of
// raw values (up to 5·δ), Reservoir as the items themselves. Heap bytes
// measured with `go test ./sketch -run TestFootprint -v` (defaults; items
// of ~10 bytes for CMS, 40-byte reservoir items):
//
//	kind                  empty   10 events   100k events
//	HLL p=14               232       288         17,193 (dense, 2^14 registers)
//	CMS ε=.001 δ=.01       176       712         86,600 (4096×5 table + 80 candidates)
//	TDigest δ=100           80       336         26,704 (~700 centroids + buffer)
//	Reservoir k=32          48     1,232          3,006
//
// Size() reports these figures approximately, for memory accounting.
//
// # Performance
//
// Benchmarks are in bench_test.go; run
//
//	go test ./sketch -run '^$' -bench . -benchmem
//
// HLL.InsertHash (dense) and CountMin.Add (table mode, known candidate or
// non-candidate) do not allocate (TestNoAllocs). The measuring machine
// (go1.26.8 linux/amd64, 2 vCPU) was shared and loaded (load average ~7)
// while these were taken, so absolute figures are pessimistic:
//
//	HLL InsertHash dense            14 ns/op, 0 allocs
//	CMS Add (table, Zipf)          150 ns/op, 0 allocs
//	TDigest Add                    150 ns/op amortized, 0 allocs
//	Reservoir Add (full, reject)    16 ns/op, 0 allocs
//	TDigest merge of 1,440 digests (10–5,000 values each, 1.8M total):
//	  MergeAll from sketches        ~90 ms  (~60 µs per input)
//	  Decode + MergeAll from blobs  ~57 ms  (~40 µs per input)
//
// # Kinds in brief
//
// HLL wraps github.com/axiomhq/hyperloglog (LogLog-Beta, sparse start) fed
// with Hash = XXH64 seed 0; 95% bounds are estimate·(1 ∓ 1.96·1.04/√2^p),
// tightened to linear-counting bounds while the sketch is sparse.
//
// CountMin: w = next power of two of ⌈e/ε⌉, d = ⌈ln 1/δ⌉, saturating uint32
// counters, conservative update, Kirsch–Mitzenmacher columns from the one
// hash; max(4·TopK, 16) candidates. Upper = estimate, Lower = estimate −
// ⌈εN⌉ with the actual ε = e/w, at confidence 1 − e^−d.
//
// TDigest is implemented here (not with github.com/caio/go-tdigest): a
// merging digest with the original size bound w ≤ 4Nq(1−q)/δ, so it needs
// no RNG, decodes without re-inserting, and merges many digests cheaply.
// Measured rank error ≤ 2e-4 at q = 0.5…0.999 (TestTDigestAccuracy).
//
// Reservoir keeps the k smallest priorities: the caller's tag (uniform) or
// −ln(U(tag))/weight (weighted); merge is exact union-and-truncate.
//
// The wire format is documented byte by byte in docs/format-sketches.md.
package sketch
