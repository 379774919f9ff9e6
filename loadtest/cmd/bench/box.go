package main

import (
	"fmt"
	"os"

	"github.com/sketchd/sketchd/internal/cgroup"
)

// The small box (--memory-box): sketchd runs in a memory cgroup of its own
// below the runner's, with the limit given. The kernel charges it the
// process's anonymous memory and the page cache of its files (Badger's
// tables, whether mapped or not, and JetStream's), reclaims the page
// cache when the charge meets the limit, and kills the process when what
// it cannot reclaim does not fit. sketchd's defaults read the limit and
// take 3/4 of it as --memory-limit (internal/cgroup, internal/defaults).

// MemoryBox is what the box's counters said after sketchd stopped (its
// Usage: peak, limit_hits, oom_kills in the results file; -1 unknown).
type MemoryBox struct {
	Limit int64  `json:"limit"`
	Dir   string `json:"dir"`
	cgroup.Usage
}

// newBox makes sketchd's box below the runner's own memory cgroup.
func newBox(limit int64) (cgroup.Group, error) {
	own, ok := cgroup.Own()
	if !ok {
		return cgroup.Group{}, fmt.Errorf("--memory-box: no memory cgroup found (/proc/self/cgroup, /proc/self/mountinfo)")
	}
	g, err := own.NewChild(fmt.Sprintf("sketchd-bench-%d", os.Getpid()), limit)
	if err != nil {
		return cgroup.Group{}, fmt.Errorf("--memory-box: %w (it needs the right to write the cgroup file system)", err)
	}
	return g, nil
}

// boxUsage reads the box's counters.
func boxUsage(g cgroup.Group, limit int64) *MemoryBox {
	return &MemoryBox{Limit: limit, Dir: g.Dir, Usage: g.Usage()}
}

// renderBox writes what the box's counters said, if sketchd ran in one.
func renderBox(p func(string, ...any), b *MemoryBox) {
	if b == nil {
		return
	}
	p("sketchd ran in a memory cgroup of its own (`--memory-box`), limit %s, so its default `--memory-limit`\n", mib(b.Limit))
	p("was 3/4 of that. The kernel charges the box the process's anonymous memory and the page cache of its\n")
	p("files (Badger's tables and JetStream's, mapped or not), and reclaims page cache when the charge meets\n")
	p("the limit: its peak charge was %s, the limit was met %s times, and the OOM killer killed %s processes in it.\n\n",
		mibOrUnknown(b.Peak), counter(b.LimitHits), counter(b.OOMKills))
}

// counter formats a cgroup counter: "unknown" for -1.
func counter(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return thousands(n)
}

// mibOrUnknown formats bytes in MiB: "unknown" for -1.
func mibOrUnknown(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return mib(n)
}
