package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// TestParseTableMappings: the tables' mappings among a maps file's lines,
// read by procfs as readMaps does: a family's own, not a subdirectory's,
// not a deleted file's, a memtable log's or the manifest's.
func TestParseTableMappings(t *testing.T) {
	maps := `00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/sketchd
7f0000000000-7f0000200000 rw-s 00000000 fd:01 1001 /data/000012.sst
7f0000200000-7f0000300000 rw-s 00200000 fd:01 1001 /data/000012.sst
7f0000400000-7f0000500000 rw-s 00000000 fd:01 1002 /data/open/000013.sst
7f0000600000-7f0000700000 rw-s 00000000 fd:01 1003 /data/000014.sst (deleted)
7f0000800000-7f0000900000 rw-s 00000000 fd:01 1004 /data/000015.mem
7f0000a00000-7f0000b00000 rw-p 00000000 00:00 0
7f0000c00000-7f0000d00000 rw-s 00000000 fd:01 1005 /data/MANIFEST.sst
`
	proc := filepath.Join(t.TempDir(), "1")
	if err := os.MkdirAll(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "maps"), []byte(maps), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(filepath.Dir(proc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := fs.Proc(1)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := p.ProcMaps()
	if err != nil {
		t.Fatal(err)
	}
	files := mappedFiles(pm)
	got := tableMappings(files, "/data")
	want := []tableMapping{{0x7f0000000000, 0x7f0000200000, 12}, {0x7f0000200000, 0x7f0000300000, 12}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("panes family: got %+v, want %+v", got, want)
	}
	if got := tableMappings(files, "/data/open"); len(got) != 1 || got[0].id != 13 {
		t.Fatalf("open family: got %+v, want table 13", got)
	}
}

// TestPageOutUnlisted: a table file mapped in the family's directory that
// is not in the levels (a compaction's or a flush's output before Badger
// adds it), and a memtable log, have their clean pages paged out by a full
// pass, and their contents read back the same.
func TestPageOutUnlisted(t *testing.T) {
	opts := quietOptions()
	opts.TablePagesInterval = -1
	db := openTest(t, t.TempDir(), opts)
	tp := newTablePages(db.open, openDir(db.dir))
	// 999999: no table of the levels has that id; Badger's own memtable
	// logs count from 1.
	for _, name := range []string{"999999.sst", "999999.mem"} {
		path := filepath.Join(tp.dir, name)
		m, want := mapSynced(t, path, 8<<20)
		mapped := fileRSS(t, path)
		if mapped < int64(len(want))/2 {
			t.Fatalf("%s: resident %d bytes of the mapped file, want most of %d", name, mapped, len(want))
		}
		if _, _, err := tp.pass(t); err != nil {
			t.Fatal(err)
		}
		if after := fileRSS(t, path); after > mapped/10 {
			t.Fatalf("%s: resident %d bytes after a full pass, want under a tenth of %d", name, after, mapped)
		}
		if !bytes.Equal(m, want) {
			t.Fatalf("%s: the paged-out file reads back different", name)
		}
	}
}

// mapSynced writes size bytes to a new file at path, syncs it (clean
// pages: the kernel may drop them), maps it shared and reads every page of
// the mapping; it returns the mapping and what was written.
func mapSynced(t *testing.T, path string, size int) (m, want []byte) {
	t.Helper()
	want = make([]byte, size)
	for i := range want {
		want[i] = byte(i * 7)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m, err = unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(m) })
	var sum, wantSum byte
	for i := 0; i < size; i += 4096 {
		sum += m[i] // map every page
		wantSum += want[i]
	}
	if sum != wantSum {
		t.Fatal("the mapped file reads back different")
	}
	return m, want
}

// fileRSS is the resident bytes of path's mappings in /proc/self/smaps.
func fileRSS(t *testing.T, path string) int64 {
	t.Helper()
	return smapsRSS(t, func(p string) bool { return p == path })
}
