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
// raw values (up to 5·δ), Reservoir as the items themselves: a 10-event
// sketch of any kind takes at most 2 KiB of heap, and Size(), which memory
// accounting sums, is within 25% of the live heap of a large sketch
// (TestFootprint). The bytes per kind, empty, at 10 and at 100,000 events
// (heap, Size and encoding) are reported by
//
//	go test ./sketch -run '^$' -bench Footprint
//
// # Performance
//
// Benchmarks are in bench_test.go; run
//
//	go test ./sketch -run '^$' -bench . -benchmem
//
// HLL.InsertHash (dense), CountMin.Add (table mode, known candidate or
// non-candidate) and Reservoir.Add (rejected item) do not allocate
// (TestNoAllocs). Figures from go1.26.8 linux/amd64, 2 vCPU ("Oxide Virtual
// Turin-like"), taken while the machine was shared (load average ~8), so
// they are pessimistic and noisy:
//
//	HLL    InsertHash dense 5–8 ns (0 allocs); Estimate dense 0.5 ms (then cached);
//	       Merge dense 13 µs; Encode 1.6 µs; Decode 25 µs
//	CMS    Add table 100–120 ns (0 allocs); Merge table 42 µs; TopK(20) 26 µs;
//	       Encode 30 µs; Decode 190 µs (4096×5 table)
//	TDigest Add 150–180 ns amortized (0 allocs); Merge of a 100k-value digest
//	       35–50 µs; Quantile 3 µs; Encode 1.6 µs; Decode 17–30 µs
//	Reservoir Add 9–13 ns (0 allocs); Merge (k=32) 7 µs; Decode 8 µs
//	TDigest merge of 1,440 digests (10–5,000 values each, 1.8M values):
//	       MergeAll 89 ms (62 µs per input, 264 KB allocated);
//	       1,440 × Merge 107–124 ms; Decode of all + MergeAll 80–100 ms
//
// # Kinds in brief
//
// The registry (Kinds, KindNamed, Kind.Info) describes every kind to code
// that handles any of them: its name, what it reads from an event (Input;
// Add feeds one value), its parameters with their defaults and ranges
// (Param), and the bound of its encoding (Params.MaxEncodedBytes).
//
// HLL wraps github.com/axiomhq/hyperloglog (LogLog-Beta, sparse start) fed
// with Hash = XXH64 seed 0; 95% bounds are estimate·(1 ∓ 1.96·1.04/√2^p),
// tightened to linear-counting bounds while the sketch is sparse.
//
// CountMin: w = next power of two of ⌈e/ε⌉, d = ⌈ln 1/δ⌉, saturating uint32
// counters, conservative update, Kirsch–Mitzenmacher columns from the one
// hash; max(4·TopK, 16) candidates of at most MaxCandidateBytes in all
// (longer items are counted, not kept as candidates). Upper = estimate,
// Lower = estimate − ⌈εN⌉ with the actual ε = e/w, at confidence 1 − e^−d.
//
// TDigest is implemented here (not with github.com/caio/go-tdigest): a
// merging digest with the original size bound w ≤ 4Nq(1−q)/δ, so it needs
// no RNG, decodes without re-inserting, and merges many digests cheaply.
// Measured rank error ≤ 2e-4 at q = 0.5…0.999, also after merging 60 or
// 1,440 digests (TestTDigestAccuracy, TestTDigestMergeMany). Reconstructing
// a caio digest from its centroids (New + ascending AddWeighted) is not
// exact when centroids share a mean (point masses: 753 → 687 centroids at
// 90% point mass), which would break replay equality.
//
// Reservoir keeps the k smallest priorities: the caller's tag (uniform) or
// −ln(U(tag))/weight (weighted), within MaxReservoirBytes of items (then it
// is Truncated and remembers the key of the first item left out); merge is
// exact union-and-truncate.
//
// The wire format is documented byte by byte in docs/format-sketches.md.
package sketch
