package defaults

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// The memory limit of the process's own cgroup. A process sees its
// cgroup's files at the cgroup file system's root only inside a cgroup
// namespace (a container's usual view). A systemd service (MemoryMax=),
// a process started under `systemd-run -p MemoryMax=` or a container on
// a cgroup v1 host without a namespace sees the whole hierarchy there,
// and its own limit lives in a sub-directory: the one /proc/self/cgroup
// names, under the mount point /proc/self/mountinfo gives. A limit set
// on a parent (a slice) binds as well, so the limit is the smallest on
// the way up to the mount point. The Go runtime finds its CPU quota the
// same way (internal/runtime/cgroup).

// cgroupMount is one cgroup file system mount of /proc/self/mountinfo.
type cgroupMount struct {
	root  string // the directory of the hierarchy mounted (field 4)
	point string // where it is mounted (field 5)
}

// cgroupMemoryLimitAt returns the memory limit of the cgroup the process
// is in, with the file system rooted at root ("/" in production; a test
// tree in tests): v2's memory.max, else v1's hierarchical limit, the
// smallest on the way from the process's cgroup up to the mount point; 0
// when none is set or the files cannot be read.
func cgroupMemoryLimitAt(root string) int64 {
	v1, v2 := readProcCgroup(filepath.Join(root, "proc/self/cgroup"))
	m1, m2 := readCgroupMounts(filepath.Join(root, "proc/self/mountinfo"))
	if m2 != nil && v2 != "" {
		if n := smallestOnTheWayUp(root, *m2, v2, readMemoryMax); n > 0 {
			return n
		}
	}
	if m1 != nil && v1 != "" {
		return smallestOnTheWayUp(root, *m1, v1, readV1Limit)
	}
	return 0
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
		case hasField(ctrls, ',', "memory"):
			v1 = p
		}
	}
	return v1, v2
}

// readCgroupMounts returns the v1 memory controller's mount and the v2
// mount, nil for one not mounted.
func readCgroupMounts(file string) (v1, v2 *cgroupMount) {
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
		m := &cgroupMount{root: unescapeMount(fields[3]), point: unescapeMount(fields[4])}
		switch {
		case after[0] == "cgroup2" && v2 == nil:
			v2 = m
		case after[0] == "cgroup" && len(after) >= 3 && hasField(after[2], ',', "memory") && v1 == nil:
			v1 = m
		}
	}
	return v1, v2
}

// smallestOnTheWayUp reads the limit of the cgroup at path p (as
// /proc/self/cgroup names it) and of each parent up to the mount point,
// and returns the smallest set (> 0).
func smallestOnTheWayUp(root string, m cgroupMount, p string, read func(dir string) int64) int64 {
	rel, ok := relativeTo(m.root, p)
	if !ok {
		// The cgroup is outside the mounted directory (a namespace's
		// view of a path above it): the mount's own files are the
		// nearest that can be read.
		rel = "/"
	}
	var limit int64
	for {
		if n := read(filepath.Join(root, m.point, rel)); n > 0 && (limit == 0 || n < limit) {
			limit = n
		}
		if rel == "/" {
			return limit
		}
		rel = path.Dir(rel)
	}
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

// readMemoryMax reads v2's memory.max in dir: 0 for "max" or none.
func readMemoryMax(dir string) int64 {
	return readLimitFile(filepath.Join(dir, "memory.max"))
}

// readV1Limit reads v1's limit in dir: memory.limit_in_bytes, and the
// hierarchical_memory_limit of memory.stat (which includes the parents'
// when the hierarchy is in use), the smaller set.
func readV1Limit(dir string) int64 {
	limit := readLimitFile(filepath.Join(dir, "memory.limit_in_bytes"))
	b, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return limit
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "hierarchical_memory_limit "); ok {
			if n := parseLimit(v); n > 0 && (limit == 0 || n < limit) {
				limit = n
			}
		}
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

// hasField reports whether the sep-separated list s holds f.
func hasField(s string, sep byte, f string) bool {
	for x := range strings.SplitSeq(s, string(sep)) {
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
