package store

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/procmem"
)

// TestQuickPass: a quick pass releases nothing before a full pass has
// listed the tables and read the maps; after one, it releases again what
// reading every pane mapped, without reading the maps itself.
func TestQuickPass(t *testing.T) {
	if !tablePagesSupported {
		t.Skip("no /proc/self/maps")
	}
	opts := quietOptions()
	opts.TablePagesInterval = -1 // passes by the test
	db := openTest(t, t.TempDir(), opts)
	info := createTest(t, db, "s", time.Minute)
	tables := openTables(t, db, info.ID, 32, 16<<20)
	tp := newTablePages(db.open, openDir(db.dir))
	if n, b, err := tp.quick(); n != 0 || b != 0 || err != nil {
		t.Fatalf("a quick pass before any full one released %d tables, %d bytes (%v); want none", n, b, err)
	}
	if _, _, err := tp.pass(t); err != nil {
		t.Fatal(err)
	}
	before := panesOf(t, db, info.ID)
	read := tableRSS(t, tp.dir)
	if read < tables/4 {
		t.Fatalf("resident %d bytes of tables after reading every pane, want most of %d", read, tables)
	}
	n, b, err := tp.quick()
	if err != nil || b < tables/2 {
		t.Fatalf("quick pass: %d new tables, %d bytes (%v); want most of %d bytes", n, b, err, tables)
	}
	if after := tableRSS(t, tp.dir); after > read/10 {
		t.Fatalf("resident %d bytes of tables after a quick pass, want under a tenth of %d", after, read)
	}
	if got := panesOf(t, db, info.ID); !slicesEqual(got, before) {
		t.Fatal("panes read after the quick pass differ from before")
	}
	t.Logf("tables %.1f MiB; read %.1f MiB back, released by the quick pass", mib(tables), mib(read))
}

// TestReadsKickQuickPass: with the loop's passes on and an interval too
// long for a timed pass to come during the test, scans that read more
// than readKick bytes of tables get a quick pass from the loop soon after.
func TestReadsKickQuickPass(t *testing.T) {
	if !tablePagesSupported {
		t.Skip("no /proc/self/maps")
	}
	opts := quietOptions()
	opts.TablePagesInterval = time.Hour
	db := openTest(t, t.TempDir(), opts)
	info := createTest(t, db, "s", time.Minute)
	openTables(t, db, info.ID, 32, 16<<20)
	quick := db.met.tablePagePasses.WithLabelValues("quick_reads")
	if q := testutil.ToFloat64(quick); q != 0 {
		t.Fatalf("%v quick passes before any read", q)
	}
	read := 0
	for read < readKick {
		read += len(panesOf(t, db, info.ID)) * (16 << 10) // writeMemtables' blobs
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(quick) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if q := testutil.ToFloat64(quick); q < 1 {
		t.Fatalf("no quick pass after reading about %d bytes of panes", read)
	}
}

// TestFileGrowthPass: a tick that finds the process's resident file
// pages grown by growthKick since the last pass runs a full pass, which
// releases the pages of tables written since the last pass (a quick pass,
// which only knows the last full pass's tables, leaves them: the test
// fails with one) and read since; a tick without growth runs none.
func TestFileGrowthPass(t *testing.T) {
	db, info, pr := testReleaser(t)
	pr.fullPass(db, "full") // before any table
	pr.files, _ = procmem.ResidentFiles()
	growth := db.met.tablePagePasses.WithLabelValues("growth")
	pr.tick(db) // tick 1 of ticksPerPass: no growth, no growth pass
	if g := testutil.ToFloat64(growth); g != 0 {
		t.Fatalf("%v growth passes without growth", g)
	}
	tables := openTables(t, db, info.ID, 64, growthKick+8<<20)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, running := compactionCounts(); running == 0 {
			break // a tick while compacting runs a full pass of its own kind
		}
	}
	panesOf(t, db, info.ID)
	read := tableRSS(t, openFam(pr).dir)
	if read < growthKick+4<<20 {
		t.Fatalf("resident %d bytes of tables after reading every pane (of %d), want over %d", read, tables, growthKick)
	}
	pr.since = 1 // not a timed pass's tick
	pr.tick(db)
	if g := testutil.ToFloat64(growth); g != 1 {
		t.Fatalf("%v growth passes after the file pages grew by %d bytes, want 1", g, read)
	}
	if after := tableRSS(t, openFam(pr).dir); after > read/10 {
		t.Fatalf("resident %d bytes of tables written and read after the last pass, after the tick: want under a tenth of %d", after, read)
	}
}

// openTables writes n MiB of panes to the open family and waits until at
// least want bytes of them are in its tables and the tables stayed the
// same for 200 ms (the flushes done); it returns their bytes.
func openTables(t *testing.T, db *DB, sid uint32, n int, want int64) int64 {
	t.Helper()
	writeMemtables(t, db, sid, 0, n)
	var tables, last int64
	same := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tables = 0
		for _, ti := range db.open.Tables() {
			tables += int64(ti.OnDiskSize)
		}
		if tables != last {
			last, same = tables, 0
			continue
		}
		if same++; tables >= want && same >= 10 {
			return tables
		}
	}
	t.Fatalf("the open family has %d bytes of tables after %d MiB written, want %d", tables, n, want)
	return 0
}

// BenchmarkPagePasses: what a full pass (the maps read) and a quick one
// cost over the three families, with the open family's tables of 32 MiB
// written (what the loop pays every tick while Badger compacts, and per
// readKick bytes the queries read):
//
//	go test ./internal/store -run '^$' -bench PagePasses
func BenchmarkPagePasses(b *testing.B) {
	db, info, pr := testReleaser(b)
	writeMemtables(b, db, info.ID, 0, 32)
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			pr.fullPass(db, "full")
		}
	})
	b.Run("quick", func(b *testing.B) {
		for b.Loop() {
			pr.quickPass(db)
		}
	})
}

// TestPagesWithinTarget: while the process's resident file pages are
// within Options.TablePagesTarget, ticks release nothing, the interval's
// and the reads' passes included, so the tables a scan read stay mapped;
// over the target the interval's tick runs a full pass, and a burst of
// growthKick past the target is released at the next tick.
func TestPagesWithinTarget(t *testing.T) {
	db, info, pr := testReleaser(t)
	tables := openTables(t, db, info.ID, 64, growthKick+16<<20)
	waitCompactions(t)
	pr.fullPass(db, "full")
	passes := func() float64 {
		return testutil.ToFloat64(db.met.tablePagePasses.WithLabelValues("full")) +
			testutil.ToFloat64(db.met.tablePagePasses.WithLabelValues("growth"))
	}
	files, _ := procmem.ResidentFiles()
	db.opts.TablePagesTarget = files + tables + 32<<20 // room for every table read
	panesOf(t, db, info.ID)
	read := tableRSS(t, openFam(pr).dir)
	if read < tables/2 {
		t.Fatalf("resident %d bytes of tables after reading every pane, want most of %d", read, tables)
	}
	before := passes()
	for range 2 * ticksPerPass {
		pr.tick(db)
	}
	if p := passes() - before; p != 0 {
		t.Fatalf("%v passes within the target", p)
	}
	if pr.overTarget(db) {
		t.Fatal("over the target with room for every table")
	}
	if after := tableRSS(t, openFam(pr).dir); after < read*9/10 {
		t.Fatalf("resident %d bytes of tables after ticks within the target, want the %d read", after, read)
	}

	db.opts.TablePagesTarget = files / 2 // over it
	for range ticksPerPass - 1 {
		pr.tick(db)
	}
	if p := passes() - before; p != 1 {
		t.Fatalf("%v passes in an interval over the target, want 1", p)
	}
	if after := tableRSS(t, openFam(pr).dir); after > read/10 {
		t.Fatalf("resident %d bytes of tables after a pass over the target, want under a tenth of %d", after, read)
	}

	files, _ = procmem.ResidentFiles()
	db.opts.TablePagesTarget = files + 1<<20
	pr.since = 0
	growth := db.met.tablePagePasses.WithLabelValues("growth")
	bursts := testutil.ToFloat64(growth)
	panesOf(t, db, info.ID) // past the target by more than growthKick
	pr.tick(db)
	if p := passes() - before; p != 2 {
		t.Fatalf("%v passes after a burst past the target, want 2", p)
	}
	if g := testutil.ToFloat64(growth) - bursts; g != 1 {
		t.Fatalf("%v growth passes after a burst past the target, want 1", g)
	}
}

// waitCompactions waits until Badger runs no compaction (up to 20 s).
func waitCompactions(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, running := compactionCounts(); running == 0 {
			return
		}
	}
}

// openFam returns the open family's pages among pr's.
func openFam(pr *pageReleaser) *tablePages {
	return pr.fams[len(pr.fams)-1]
}

// TestPassStopsWithinTarget: a pass releases the families coldest first
// (releaseOrder) and stops once the file pages are within the target, so
// when releasing the panes family's tables is enough, the open family's,
// which every commit and open tail reads, stay mapped; when it is not,
// the open family's go too.
func TestPassStopsWithinTarget(t *testing.T) {
	db, info, pr := testReleaser(t)
	// Open panes of stream s, then final panes of stream f: its commits'
	// watermark (an hour) is past their starts.
	openTables(t, db, info.ID, 32, 16<<20)
	final := createTest(t, db, "f", time.Minute)
	for c := range 48 {
		panes := make([]sketchd.PaneRecord, 64)
		for i := range panes {
			panes[i] = pane("f", int64(c*64+i)*60, 1, blob(uint64(1e6+c*64+i), 16<<10))
		}
		commit(t, db, final.ID, uint64(time.Hour)+uint64(c), panes...)
	}
	waitTables(t, db.panes, 16<<20)
	waitCompactions(t)
	read := func() (open, panes int64) {
		panesOf(t, db, info.ID)
		scanAll(t, db, final.ID, []string{"f"}, 0, 1<<40)
		return tableRSS(t, openFam(pr).dir), tableRSS(t, pr.fams[0].dir)
	}
	open, panes := read()
	if open < 8<<20 || panes < 8<<20 {
		t.Fatalf("resident after reading every pane: open family %d, panes family %d bytes of tables; want 8 MiB of each", open, panes)
	}
	files, _ := procmem.ResidentFiles()
	db.opts.TablePagesTarget = files - panes/2
	pr.fullPass(db, "full")
	if o, p := tableRSS(t, openFam(pr).dir), tableRSS(t, pr.fams[0].dir); p > panes/10 || o < open*9/10 {
		t.Fatalf("after a pass that the panes family's tables brought within the target: open %d of %d, panes %d of %d bytes resident; want the open family's kept, the panes family's released", o, open, p, panes)
	}

	open, panes = read()
	files, _ = procmem.ResidentFiles()
	db.opts.TablePagesTarget = files - panes - open/2
	pr.fullPass(db, "full")
	if o, p := tableRSS(t, openFam(pr).dir), tableRSS(t, pr.fams[0].dir); p > panes/10 || o > open/10 {
		t.Fatalf("after a pass that needed both families: open %d of %d, panes %d of %d bytes resident; want both released", o, open, p, panes)
	}
}

// waitTables waits until the family's tables hold want bytes and stayed
// the same for 200 ms (its flushes done).
func waitTables(t *testing.T, fam *badger.DB, want int64) {
	t.Helper()
	var tables, last int64
	same := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tables = 0
		for _, ti := range fam.Tables() {
			tables += int64(ti.OnDiskSize)
		}
		if tables != last {
			last, same = tables, 0
			continue
		}
		if same++; tables >= want && same >= 10 {
			return
		}
	}
	t.Fatalf("%d bytes of tables after 20 s, want %d", tables, want)
}

// testReleaser opens a store whose loop runs no pass (the test runs them)
// with a stream s, and a page releaser over its families; it skips the
// test where tables' pages cannot be released.
func testReleaser(t testing.TB) (*DB, StreamInfo, *pageReleaser) {
	t.Helper()
	if !tablePagesSupported {
		t.Skip("no /proc/self/maps")
	}
	opts := quietOptions()
	opts.TablePagesInterval = -1
	db := openTest(t, t.TempDir(), opts)
	info := createTest(t, db, "s", time.Minute)
	pr := newPageReleaser(db)
	pr.on = true
	pr.fams = releaseOrder(db)
	return db, info, pr
}
