package memlimit

import (
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"syscall"
	"testing"

	"github.com/sketchd/sketchd/internal/procmem"
)

// TestFollowsFilePages runs the limiter on the test binary's own resident
// file pages: mapping and reading 64 MiB of a file lowers the soft limit
// the runtime has by what they take past their share, and unmapping it
// brings it back.
func TestFollowsFilePages(t *testing.T) {
	restoreGoLimit(t)
	before, ok := procmem.ResidentFiles()
	if !ok {
		t.Skip("no resident file pages to read here")
	}
	budget := before + 512*mib
	goLimit := budget - before - 32*mib // the files fit, 32 MiB to spare
	l := New(Options{Budget: budget, GoLimit: goLimit}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	debug.SetMemoryLimit(goLimit)
	l.step()
	if got := debug.SetMemoryLimit(-1); got != goLimit {
		t.Fatalf("soft limit %d MiB before the mapping, want %d", got/mib, goLimit/mib)
	}
	unmap := mapFile(t, 64*mib)
	l.step()
	files, _ := procmem.ResidentFiles()
	got := debug.SetMemoryLimit(-1)
	if want := budget - files; got > want+goLimitStep || got < want-goLimitStep || got > goLimit-30*mib {
		t.Errorf("soft limit %d MiB with %d MiB of files resident, want about %d", got/mib, files/mib, want/mib)
	}
	unmap()
	l.step()
	if got := debug.SetMemoryLimit(-1); got != goLimit {
		t.Errorf("soft limit %d MiB after the mapping went, want %d", got/mib, goLimit/mib)
	}
}

// sink keeps mapFile's reads.
var sink byte

// mapFile writes a file of size bytes, maps it and reads every page of it; the
// function it returns unmaps it.
func mapFile(t *testing.T, size int) func() {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "pages")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, os.Getpagesize())
	for i := range page {
		page[i] = byte(i)
	}
	for range size / len(page) {
		if _, err := f.Write(page); err != nil {
			t.Fatal(err)
		}
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += os.Getpagesize() {
		sink += m[i]
	}
	return func() {
		if err := syscall.Munmap(m); err != nil {
			t.Fatal(err)
		}
	}
}
