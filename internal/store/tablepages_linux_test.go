package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
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
