package defaults

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sketchd/sketchd/internal/cgroup"
)

// MemoryLimit is the default memory limit of the process when no cgroup
// limit applies: 512 MiB, which fits the service's own budget (caches,
// queries, Badger's memtables and table builders, open panes) on a small
// box. See docs/operations.md ("Memory").
const MemoryLimit = 512 << 20

// Share is a part of a whole, Num/Den of it: the memory limit's split
// has its fractions here, and the help texts and metric descriptions that
// state them print these (String), so that a changed share cannot leave
// a stale "7/8" behind.
type Share struct{ Num, Den int64 }

// Of returns the share of n, rounded down (n/Den first: no overflow).
func (s Share) Of(n int64) int64 { return n / s.Den * s.Num }

// Float returns the share as a fraction.
func (s Share) Float() float64 { return float64(s.Num) / float64(s.Den) }

// String writes the share as a fraction: "7/8".
func (s Share) String() string { return fmt.Sprintf("%d/%d", s.Num, s.Den) }

// The memory limit's shares (SplitMemory; docs/operations.md, "Memory").
var (
	// FilesShare is the part of the memory limit left to what the Go
	// runtime does not count: the binary's mapped code and data (24
	// MiB), the Badger table pages read or written since the store last
	// released them (every half second), and Badger's memtable logs,
	// mapped files all. The Go runtime's soft limit is the rest
	// (RuntimeShare).
	FilesShare = Share{1, 8}
	// RuntimeShare is the Go runtime's soft limit: the limit less
	// FilesShare.
	RuntimeShare = Share{FilesShare.Den - FilesShare.Num, FilesShare.Den}
	// CgroupShare is the default limit's part of the cgroup's limit
	// (MemoryLimitFor).
	CgroupShare = Share{3, 4}
	// QueryCacheShare is the query cache's: decoded final panes and
	// rollup blocks.
	QueryCacheShare = Share{7, 64}
)

// MemoryLimitFor returns the default memory limit given the cgroup's
// (cgroup ≤ 0: none): 3/4 of the cgroup limit, leaving the rest to the
// page cache of sketchd's files, which the kernel charges to the cgroup
// too, and at most MemoryLimit.
func MemoryLimitFor(cgroup int64) int64 {
	if cgroup <= 0 {
		return MemoryLimit
	}
	return min(CgroupShare.Of(cgroup), MemoryLimit)
}

// CgroupMemoryLimit reads the memory limit of the process's own cgroup,
// the smallest set on the way up (internal/cgroup); 0 when there is none.
func CgroupMemoryLimit() int64 { return cgroup.MemoryLimit() }

// MemorySplit is how a memory limit is divided between the parts of the
// process that hold memory on purpose, in shares of the whole limit
// (Budget). Everything else (open panes, Badger's memtables, table
// builders and compactions, JetStream's file store, the runtime) uses the
// rest of the Go runtime's limit, about a third of the whole.
type MemorySplit struct {
	Budget int64 // the process's memory limit (--memory-limit): what its RSS should stay within
	Limit  int64 // the Go runtime's soft limit (debug.SetMemoryLimit): 7/8 of Budget
	Files  int64 // the mapped files (the binary, Badger's table pages and memtable logs): the other 1/8; the store releases table pages past it (store.Options.TablePagesTarget)

	QueryCache   int64 // decoded final panes and rollup blocks (query.Options.CacheBytes): 7/64
	WindowCache  int64 // final windows, edge parts and pieces per query shape (query.Options.WindowCacheBytes): 1/16
	ResultCache  int64 // recent results (query.Options.ResultBytes): 1/64
	AnswerCache  int64 // recent rendered answers (api.Limits.AnswerCacheBytes): 1/32
	QueriesTotal int64 // running queries together (query.Options.TotalQueryBytes): 1/4
	QueryMax     int64 // one query (query.Options.MaxQueryBytes): 1/8

	StoreBlockCache int64 // Badger block cache: none (tables uncompressed); --store-block-cache-mb sets one and compression
	StoreIndexCache int64 // Badger table indexes and bloom filters: 1/64

	JetStreamMemory int64 // the embedded JetStream's memory storage: 1/16
}

// SplitMemory divides limit (bytes), the process's memory limit.
func SplitMemory(limit int64) MemorySplit {
	return MemorySplit{
		Budget:          limit,
		Limit:           limit - FilesShare.Of(limit),
		Files:           FilesShare.Of(limit),
		QueryCache:      QueryCacheShare.Of(limit),
		WindowCache:     limit / 16,
		ResultCache:     limit / 64,
		AnswerCache:     limit / 32,
		QueriesTotal:    limit / 4,
		QueryMax:        limit / 8,
		StoreIndexCache: limit / 64,
		JetStreamMemory: limit / 16,
	}
}

// ParseBytes parses a size: a number of bytes, or with a unit KiB, MiB,
// GiB (powers of 1024) or KB, MB, GB (of 1000): "512MiB", "1GiB",
// "800MB", "1073741824". It must be positive.
func ParseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a positive size such as 512MiB, 1GiB or a number of bytes, got %q", s)
	}
	return n * mult, nil
}
