package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cgroupTree writes files (path relative to the tree's root -> content)
// into a fresh directory and returns it.
func cgroupTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	mountV2 = "30 22 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
	mountV1 = "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
		"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
		"39 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	unlimitedV1   = "9223372036854771712\n"
	controllersV2 = "cpuset cpu io memory pids\n"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
	}{{
		// A systemd service with MemoryMax=: the root cgroup has no
		// memory.max, the service's directory has.
		name: "v2 service below the root",
		files: map[string]string{
			"proc/self/cgroup":                                      "0::/system.slice/sketchd.service\n",
			"proc/self/mountinfo":                                   mountV2,
			"sys/fs/cgroup/cgroup.controllers":                      controllersV2,
			"sys/fs/cgroup/system.slice/memory.max":                 "max\n",
			"sys/fs/cgroup/system.slice/sketchd.service/memory.max": "419430400\n",
		},
		want: 400 << 20,
	}, {
		name: "v2 limit set on the parent slice",
		files: map[string]string{
			"proc/self/cgroup":                                   "0::/box.slice/sketchd.service\n",
			"proc/self/mountinfo":                                mountV2,
			"sys/fs/cgroup/cgroup.controllers":                   controllersV2,
			"sys/fs/cgroup/box.slice/memory.max":                 "268435456\n",
			"sys/fs/cgroup/box.slice/sketchd.service/memory.max": "max\n",
		},
		want: 256 << 20,
	}, {
		// A container's namespace: its cgroup is the mount's root.
		name: "v2 namespace",
		files: map[string]string{
			"proc/self/cgroup":                 "0::/\n",
			"proc/self/mountinfo":              mountV2,
			"sys/fs/cgroup/cgroup.controllers": controllersV2,
			"sys/fs/cgroup/memory.max":         "1073741824\n",
		},
		want: 1 << 30,
	}, {
		name: "v2 without a limit",
		files: map[string]string{
			"proc/self/cgroup":                    "0::/user.slice\n",
			"proc/self/mountinfo":                 mountV2,
			"sys/fs/cgroup/cgroup.controllers":    controllersV2,
			"sys/fs/cgroup/user.slice/memory.max": "max\n",
		},
		want: 0,
	}, {
		// This machine's layout: v1 with a hybrid unified mount that
		// has no memory controller.
		name: "v1 nested, hybrid",
		files: map[string]string{
			"proc/self/cgroup":                                           "4:memory:/process_api/box\n1:cpu:/\n0::/\n",
			"proc/self/mountinfo":                                        mountV1,
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                 unlimitedV1,
			"sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":     unlimitedV1,
			"sys/fs/cgroup/memory/process_api/box/memory.limit_in_bytes": "419430400\n",
			"sys/fs/cgroup/memory/process_api/box/memory.stat":           "cache 0\nhierarchical_memory_limit 419430400\n",
		},
		want: 400 << 20,
	}, {
		name: "v1 hierarchical limit from a parent",
		files: map[string]string{
			"proc/self/cgroup":                               "4:memory:/a/b\n",
			"proc/self/mountinfo":                            mountV1,
			"sys/fs/cgroup/memory/a/b/memory.limit_in_bytes": unlimitedV1,
			"sys/fs/cgroup/memory/a/b/memory.stat":           "hierarchical_memory_limit 536870912\n",
		},
		want: 512 << 20,
	}, {
		// A namespace whose view of its own path is outside the mounted
		// directory: the mount's own files are read.
		name: "v1 path outside the mount root",
		files: map[string]string{
			"proc/self/cgroup":                           "4:memory:/../../other\n",
			"proc/self/mountinfo":                        "34 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "209715200\n",
		},
		want: 200 << 20,
	}, {
		name: "v1 mount root is the container's directory",
		files: map[string]string{
			"proc/self/cgroup":                           "4:memory:/docker/abc\n",
			"proc/self/mountinfo":                        "34 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "209715200\n",
		},
		want: 200 << 20,
	}, {
		name:  "no proc",
		files: map[string]string{"sys/fs/cgroup/memory.max": "1073741824\n"},
		want:  0,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g, ok := ownAt(cgroupTree(t, tc.files))
			if got := g.MemoryLimit(); (ok || tc.want != 0) && got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/cgroup`:  "/sys/fs/cgroup",
		`/mnt/my\040disk`: "/mnt/my disk",
		`/a\134b`:         `/a\b`,
		`/trailing\04`:    `/trailing\04`,
		`/not\999octal`:   `/not\999octal`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestChildGroup makes a memory cgroup below the test's own (v1 or v2,
// when this process may: root with the cgroup file system writable;
// skipped otherwise) with a limit of 300 MiB, starts a process in it, and
// checks that the process reads that limit and that the group's counters
// charged it.
func TestChildGroup(t *testing.T) {
	if os.Getenv("SKETCHD_CGROUP_CHILD") == "1" {
		fmt.Println("limit", MemoryLimit())
		return
	}
	g := newChild(t, 300<<20)
	name, args := g.JoinAndExec(os.Args[0], "-test.run", "^TestChildGroup$", "-test.v")
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SKETCHD_CGROUP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child in %s: %v\n%s", g.Dir, err, out)
	}
	want := int64(300 << 20)
	if own, _ := Own(); own.MemoryLimit() > 0 && own.MemoryLimit() < want {
		want = own.MemoryLimit() // a parent's smaller limit binds
	}
	if want := fmt.Sprintf("limit %d\n", want); !strings.Contains(string(out), want) {
		t.Fatalf("child in %s printed\n%s\nwant a line %q", g.Dir, out, want)
	}
	u := g.Usage()
	t.Logf("usage of %s: %+v", g.Dir, u)
	if u.Peak <= 0 || u.OOMKills != 0 || u.LimitHits < 0 {
		t.Errorf("usage %+v: want a peak charged, no OOM kill, limit hits counted", u)
	}
}

// newChild makes a memory cgroup below this process's own with the
// limit, removed at the end of the test. It skips the test when it
// cannot.
func newChild(t *testing.T, limit int64) Group {
	t.Helper()
	own, ok := Own()
	if !ok {
		t.Skip("no memory cgroup here")
	}
	g, err := own.NewChild(fmt.Sprintf("sketchd-test-%d", os.Getpid()), limit)
	if err != nil {
		t.Skipf("cannot make a memory cgroup here: %v", err)
	}
	t.Cleanup(func() { _ = g.Remove() })
	// A process must be able to join it (v2's rules on where processes
	// may live can refuse).
	if err := exec.Command("sh", "-c", `echo $$ > "$0"`, g.Procs()).Run(); err != nil {
		t.Skipf("a process cannot join %s: %v", g.Dir, err)
	}
	return g
}
