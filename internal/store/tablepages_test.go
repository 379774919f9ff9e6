package store

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTablePagesReleased: the open family's tables, written through their
// mapping by memtable flushes, are resident in the process until the
// store releases them (at its first pass: a pass lists the tables before
// it reads the maps, and releases nothing without that list); then almost
// none of them is and every pane reads back the same. Reading the panes
// maps their pages again; the next pass releases them again.
func TestTablePagesReleased(t *testing.T) {
	if !tablePagesSupported {
		t.Skip("no /proc/self/maps")
	}
	dir := t.TempDir()
	opts := quietOptions()
	opts.TablePagesInterval = -1 // released by the test
	db := openTest(t, dir, opts)
	info := createTest(t, db, "s", time.Minute)
	writeMemtables(t, db, info.ID, 0, 32) // 32 MiB: 3 or 4 flushed memtables
	var tables int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tables = 0
		for _, ti := range db.open.Tables() {
			tables += int64(ti.OnDiskSize)
		}
		if tables >= 16<<20 {
			break
		}
	}
	if tables < 16<<20 {
		t.Fatalf("the open family has %d bytes of tables after 32 MiB written, want 16 MiB", tables)
	}
	before := panesOf(t, db, info.ID)
	tp := newTablePages(db.open, openDir(db.dir))
	rss := tableRSS(t, tp.dir)
	t.Logf("tables %.1f MiB, resident %.1f MiB", mib(tables), mib(rss))
	if rss < tables/2 {
		t.Fatalf("resident %d bytes of %d bytes of tables before the release: they are not written through their mapping any more, or this test no longer sees it", rss, tables)
	}
	maps, err := readMaps()
	if err != nil {
		t.Fatal(err)
	}
	if n, b, err := tp.release(nil, maps); n != 0 || b != 0 || err != nil {
		t.Fatalf("a release without the tables listed before the maps were read released %d tables, %d bytes (%v); want none", n, b, err)
	}
	n, released, err := tp.pass(t)
	if err != nil {
		t.Fatal(err)
	}
	after := tableRSS(t, tp.dir)
	t.Logf("released %d tables, %.1f MiB of mappings; resident after %.1f MiB", n, mib(released), mib(after))
	if n == 0 || released < tables/2 {
		t.Fatalf("released %d tables, %d bytes, want most of %d bytes", n, released, tables)
	}
	if after > rss/10 {
		t.Fatalf("resident %d bytes of tables after the release, want under a tenth of %d", after, rss)
	}
	if got := panesOf(t, db, info.ID); !slicesEqual(got, before) {
		t.Fatalf("panes read after the release differ from before (%d vs %d)", len(got), len(before))
	}
	read := tableRSS(t, tp.dir) // mapped again by the panes read back above
	if read < tables/4 {
		t.Fatalf("resident %d bytes of tables after reading every pane, want most of %d", read, tables)
	}
	if n, b, err := tp.pass(t); n != 0 || b < tables/2 || err != nil {
		t.Fatalf("a second pass released %d new tables, %d bytes (%v); want 0 new and most of %d bytes", n, b, err, tables)
	}
	if again := tableRSS(t, tp.dir); again > read/10 {
		t.Fatalf("resident %d bytes of tables after a second pass, want under a tenth of %d", again, read)
	}
	t.Logf("read %.1f MiB of tables again, released by the next pass", mib(read))
}

// pass is one pass of the store's loop over tp alone.
func (tp *tablePages) pass(t *testing.T) (int, int64, error) {
	t.Helper()
	before := tp.tables()
	maps, err := readMaps()
	if err != nil {
		t.Fatal(err)
	}
	return tp.release(before, maps)
}

func panesOf(t *testing.T, db *DB, sid uint32) []string {
	return scanAll(t, db, sid, []string{"k"}, 0, 1<<40)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// tableRSS sums the resident bytes of the mappings of dir/*.sst in
// /proc/self/smaps.
func tableRSS(t *testing.T, dir string) int64 {
	t.Helper()
	return smapsRSS(t, func(path string) bool { return filepath.Dir(path) == dir && strings.HasSuffix(path, ".sst") })
}

// smapsRSS sums the resident bytes of the file mappings in
// /proc/self/smaps whose path keep accepts.
func smapsRSS(t *testing.T, keep func(path string) bool) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) == 6 && keep(f[5])
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			sum += kb << 10
		}
	}
	return sum
}
