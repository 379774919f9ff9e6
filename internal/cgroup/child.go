package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// NewChild makes the group name below g with a memory limit of its own,
// for a process to be started in (its Procs file). It needs the right to
// write the cgroup file system (root, usually); the caller removes it
// (Remove) once its processes have exited.
func (g Group) NewChild(name string, limit int64) (Group, error) {
	c := Group{Dir: filepath.Join(g.Dir, name), V2: g.V2, mount: g.mount}
	if err := os.Mkdir(c.Dir, 0o755); err != nil {
		return Group{}, fmt.Errorf("cgroup: %w", err)
	}
	file := "memory.limit_in_bytes"
	if g.V2 {
		file = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(c.Dir, file), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		_ = c.Remove()
		return Group{}, fmt.Errorf("cgroup: set the limit of %s: %w", c.Dir, err)
	}
	return c, nil
}

// Procs is the file a process writes its PID to in order to join g.
func (g Group) Procs() string { return filepath.Join(g.Dir, "cgroup.procs") }

// JoinAndExec returns a command line that starts bin with args inside g:
// a shell that moves itself into the group, then replaces itself with bin
// (same PID), so bin's first allocation, and its reading of its own
// limit, are in the group.
func (g Group) JoinAndExec(bin string, args ...string) (string, []string) {
	return "sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, g.Procs(), bin}, args...)
}

// Remove removes g, which must have no processes left.
func (g Group) Remove() error { return os.Remove(g.Dir) }

// Usage is what a memory cgroup's counters say of its memory. Its JSON
// names are those of the load-test runner's results files, which embed it
// (loadtest/cmd/bench MemoryBox): files of older runs must still read.
type Usage struct {
	Peak      int64 `json:"peak"`       // the most memory it was charged (anonymous and page cache): v1 memory.max_usage_in_bytes, v2 memory.peak; -1 unknown
	LimitHits int64 `json:"limit_hits"` // times an allocation met the limit and the kernel reclaimed: v1 memory.failcnt, v2 memory.events "max"; -1 unknown
	OOMKills  int64 `json:"oom_kills"`  // processes the OOM killer killed in it; -1 unknown
}

// Usage reads g's counters.
func (g Group) Usage() Usage {
	if g.V2 {
		return Usage{
			Peak:      readCounter(filepath.Join(g.Dir, "memory.peak")),
			LimitHits: statField(filepath.Join(g.Dir, "memory.events"), "max"),
			OOMKills:  statField(filepath.Join(g.Dir, "memory.events"), "oom_kill"),
		}
	}
	return Usage{
		Peak:      readCounter(filepath.Join(g.Dir, "memory.max_usage_in_bytes")),
		LimitHits: readCounter(filepath.Join(g.Dir, "memory.failcnt")),
		OOMKills:  statField(filepath.Join(g.Dir, "memory.oom_control"), "oom_kill"),
	}
}

// readCounter reads a file holding one number: -1 when it cannot.
func readCounter(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
