// Package cgroup finds the process's own memory control group (cgroup v1
// or v2), reads its memory limit, and makes a child group with a limit of
// its own (the load runner's --memory-box, and tests).
//
// A process sees its cgroup's files at the cgroup file system's root only
// inside a cgroup namespace (a container's usual view). A systemd service
// (MemoryMax=), a process started under `systemd-run -p MemoryMax=` or a
// container on a cgroup v1 host without a namespace sees the whole
// hierarchy there, and its own group is a sub-directory: the one
// /proc/self/cgroup names, under the mount point /proc/self/mountinfo
// gives. A limit set on a parent (a slice) binds as well, so the limit is
// the smallest on the way up to the mount point. The Go runtime finds its
// CPU quota the same way (internal/runtime/cgroup).
package cgroup

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Group is a memory cgroup: its directory in the mounted cgroup file
// system and which version it is.
type Group struct {
	Dir   string // absolute path of the group's directory
	V2    bool   // the unified hierarchy (memory.max); else v1 (memory.limit_in_bytes)
	mount string // the mount point: the limits are read up to here
}

// Own returns the memory cgroup the process is in; false when there is
// none to be found (no /proc, no cgroup file system with the memory
// controller mounted).
func Own() (Group, bool) { return ownAt("/") }

// MemoryLimit returns the memory limit of the process's cgroup: 0 when
// there is none.
func MemoryLimit() int64 {
	g, ok := Own()
	if !ok {
		return 0
	}
	return g.MemoryLimit()
}

// ownAt is Own with the file system rooted at root ("/" in production; a
// test tree in tests). v2 when its mount has the memory controller, else
// v1's memory hierarchy.
func ownAt(root string) (Group, bool) {
	v1, v2 := readProcCgroup(filepath.Join(root, "proc/self/cgroup"))
	m1, m2 := readMounts(filepath.Join(root, "proc/self/mountinfo"))
	if m2 != nil && v2 != "" && hasMemoryController(filepath.Join(root, m2.point)) {
		return m2.group(root, v2, true), true
	}
	if m1 != nil && v1 != "" {
		return m1.group(root, v1, false), true
	}
	return Group{}, false
}

// MemoryLimit returns the smallest memory limit set on the group and its
// parents up to the mount point: v2's memory.max; v1's
// memory.limit_in_bytes and the hierarchical_memory_limit of memory.stat
// (which holds the parents' when the hierarchy is in use). 0 when none is
// set.
func (g Group) MemoryLimit() int64 {
	read := readV1Limit
	if g.V2 {
		read = func(dir string) int64 { return readLimitFile(filepath.Join(dir, "memory.max")) }
	}
	var limit int64
	for dir := g.Dir; ; dir = filepath.Dir(dir) {
		if n := read(dir); n > 0 && (limit == 0 || n < limit) {
			limit = n
		}
		if dir == g.mount || !strings.HasPrefix(dir, g.mount) {
			return limit
		}
	}
}

// mount is one cgroup file system mount of /proc/self/mountinfo.
type mount struct {
	root  string // the directory of the hierarchy mounted (field 4)
	point string // where it is mounted (field 5)
}

// group returns the group at p (as /proc/self/cgroup names it) under the
// mount, with the file system rooted at root. A p outside the mounted
// directory (a namespace's view of a path above it) is the mount's own
// directory, the nearest that can be read.
func (m mount) group(root, p string, v2 bool) Group {
	rel, ok := relativeTo(m.root, p)
	if !ok {
		rel = "/"
	}
	point := filepath.Join(root, m.point)
	return Group{Dir: filepath.Join(point, rel), V2: v2, mount: point}
}

// readProcCgroup returns the process's cgroup path in the v1 memory
// hierarchy and in the v2 (unified) one; "" for one it is not in.
func readProcCgroup(file string) (v1, v2 string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", ""
	}
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controllers:path
		id, rest, ok1 := strings.Cut(strings.TrimSpace(line), ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			continue
		}
		switch {
		case id == "0" && ctrls == "":
			v2 = p
		case hasField(ctrls, "memory"):
			v1 = p
		}
	}
	return v1, v2
}

// readMounts returns the v1 memory controller's mount and the v2 mount,
// nil for one not mounted.
func readMounts(file string) (v1, v2 *mount) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// id parent maj:min root point options [optional...] - fstype source superoptions
		pre, post, ok := bytes.Cut(sc.Bytes(), []byte(" - "))
		if !ok {
			continue
		}
		fields, after := strings.Fields(string(pre)), strings.Fields(string(post))
		if len(fields) < 5 || len(after) < 1 {
			continue
		}
		m := &mount{root: unescapeMount(fields[3]), point: unescapeMount(fields[4])}
		switch {
		case after[0] == "cgroup2" && v2 == nil:
			v2 = m
		case after[0] == "cgroup" && len(after) >= 3 && hasField(after[2], "memory") && v1 == nil:
			v1 = m
		}
	}
	return v1, v2
}

// hasMemoryController reports whether the v2 hierarchy mounted at point
// has the memory controller (a hybrid host's unified mount has none).
func hasMemoryController(point string) bool {
	b, err := os.ReadFile(filepath.Join(point, "cgroup.controllers"))
	return err == nil && hasField(strings.Join(strings.Fields(string(b)), ","), "memory")
}

// relativeTo returns p below the mount's root, cleaned and starting with
// "/"; false when p is not under it.
func relativeTo(mountRoot, p string) (string, bool) {
	mountRoot, p = path.Clean("/"+mountRoot), path.Clean("/"+p)
	if mountRoot == "/" {
		return p, true
	}
	if p == mountRoot {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(p, mountRoot+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

// readV1Limit reads v1's limit in dir: memory.limit_in_bytes, and the
// hierarchical_memory_limit of memory.stat, the smaller set.
func readV1Limit(dir string) int64 {
	limit := readLimitFile(filepath.Join(dir, "memory.limit_in_bytes"))
	if n := statField(filepath.Join(dir, "memory.stat"), "hierarchical_memory_limit"); n > 0 && n < 1<<60 && (limit == 0 || n < limit) {
		limit = n
	}
	return limit
}

// readLimitFile reads a file that holds one limit: 0 for none.
func readLimitFile(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	return parseLimit(string(b))
}

// parseLimit parses a limit: 0 for "max", v1's "unlimited" (a page
// count's worth near 2^63) or anything else that is not a positive number.
func parseLimit(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0
	}
	return n
}

// statField returns the value of the line "name value" of a flat keyed
// file (memory.stat, memory.events, memory.oom_control); -1 when absent.
func statField(file, name string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// hasField reports whether the comma-separated list s holds f.
func hasField(s, f string) bool {
	for x := range strings.SplitSeq(s, ",") {
		if x == f {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, \011,
// \012, \134) of a path.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
