package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestProcsRunKillsTheGroupOnTimeout(t *testing.T) {
	p := newProcs(io.Discard)
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The shell starts a grandchild that would outlive a plain kill of the
	// shell; the group kill must take it too.
	start := time.Now()
	_, err := p.run(context.Background(), 200*time.Millisecond, "sh", "-c", "sleep 30 & echo $! > "+pidFile+"; wait")
	if err == nil {
		t.Fatal("a command past its timeout returned no error")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("run returned after %s", el)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range string(b) {
		if c >= '0' && c <= '9' {
			pid = pid*10 + int(c-'0')
		}
	}
	// Reaped by init or a zombie for a moment: poll until gone.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		st, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if len(st) > 0 && containsState(string(st), 'Z') {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containsState reports whether a /proc/<pid>/stat line has state s.
func containsState(stat string, s byte) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == s
		}
	}
	return false
}

func TestProcsRunOutput(t *testing.T) {
	p := newProcs(io.Discard)
	out, err := p.run(context.Background(), 10*time.Second, "sh", "-c", "echo hello")
	if err != nil || string(out) != "hello\n" {
		t.Errorf("run = %q, %v", out, err)
	}
	if _, err := p.run(context.Background(), 10*time.Second, "sh", "-c", "exit 3"); err == nil {
		t.Error("exit 3: no error")
	}
}

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "b"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	used, apparent, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if apparent != 15000 || used < 12288 {
		t.Errorf("used %d apparent %d; want apparent 15000 and at least 3 pages used", used, apparent)
	}
}

func TestShellLine(t *testing.T) {
	got := shellLine("/usr/bin/nats", []string{"bench", "sub", "a b", "it's", "x&y"})
	want := `nats bench sub 'a b' 'it'\''s' 'x&y'`
	if got != want {
		t.Errorf("shellLine = %s, want %s", got, want)
	}
}

func TestStatusKB(t *testing.T) {
	s := "VmRSS:\t  2048 kB\nRssAnon:\t  1024 kB\nRssFile:\t  1000 kB\n"
	if got := statusKB(s, "RssAnon:"); got != 1024<<10 {
		t.Errorf("RssAnon = %d, want %d", got, 1024<<10)
	}
	if got := statusKB(s, "RssShmem:"); got != 0 {
		t.Errorf("absent field = %d, want 0", got)
	}
}
