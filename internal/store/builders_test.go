package store

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestBuilderPoolFound: the store finds Badger's allocator pool. If a
// Badger upgrade renames or retypes allocPool, this fails (and the store
// would keep Badger's pooling: builders.go).
func TestBuilderPoolFound(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	if builderPool(db.open) == nil {
		t.Fatal("badger.DB has no allocPool *z.AllocatorPool: builders.go cannot empty the table-builder pool")
	}
}

// writeMemtables commits n MiB of incompressible panes (64 of 16 KiB per
// commit), enough to flush n/8 memtables of 8 MiB.
func writeMemtables(t testing.TB, db *DB, sid uint32, from, n int) {
	for c := from; c < from+n; c++ {
		panes := make([]sketchd.PaneRecord, 64)
		for i := range panes {
			panes[i] = pane("k", int64(c*64+i)*60, 1, blob(uint64(c*64+i), 16<<10))
		}
		commit(t, db, sid, uint64(c+1), panes...)
	}
}

// writeAndDrain is writeMemtables draining the pool after each commit and
// then until it released a flush builder's 8 MiB or 20 s passed (the
// flushes run in Badger's background, and Badger itself frees a pooled
// allocator after 2 s without a table built).
func writeAndDrain(t *testing.T, db *DB, sid uint32, from, n int) (allocators int, bytes int64) {
	pool := builderPool(db.open)
	for c := from; c < from+n; c++ {
		writeMemtables(t, db, sid, c, 1)
		a, b := drainBuilders(pool)
		allocators, bytes = allocators+a, bytes+b
	}
	for deadline := time.Now().Add(20 * time.Second); bytes < 8<<20 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a, b := drainBuilders(pool)
		allocators, bytes = allocators+a, bytes+b
	}
	return allocators, bytes
}

// TestDrainBuilders: after memtable flushes Badger's pool holds the flush
// builders' allocators (each at least the 8 MiB memtable it built); the
// drains release them, the data reads back, and later flushes work with
// fresh allocators (the pool fills again).
func TestDrainBuilders(t *testing.T) {
	o := quietOptions()
	o.BuilderDrainInterval = -1 // drained by hand here
	db := openTest(t, t.TempDir(), o)
	sid := createTest(t, db, "b", time.Minute).ID
	n, bytes := writeAndDrain(t, db, sid, 0, 12)
	t.Logf("released %d allocators, %d MiB", n, bytes>>20)
	if bytes < 8<<20 {
		t.Errorf("released %d bytes in %d allocators, want at least one flush builder's 8 MiB", bytes, n)
	}
	read := 0
	if err := db.ScanPanes(t.Context(), sid, []string{"k"}, 0, 12*64*60, func(p sketchd.PaneRecord) error {
		if want := pane("k", p.Start, 1, blob(uint64(p.Start/60), 16<<10)); !equalPane(p, want) {
			t.Fatalf("pane at %d differs after the drain", p.Start)
		}
		read++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if read != 12*64 {
		t.Errorf("read %d panes back, want %d", read, 12*64)
	}
	if n, bytes := writeAndDrain(t, db, sid, 12, 12); bytes < 8<<20 {
		t.Errorf("after more flushes released %d bytes in %d allocators, want at least 8 MiB", bytes, n)
	}
}

// TestBuilderDrainLoop: the background loop drains the pool every
// BuilderDrainInterval and counts the bytes.
func TestBuilderDrainLoop(t *testing.T) {
	o := quietOptions()
	o.BuilderDrainInterval = 50 * time.Millisecond
	reg := prometheus.NewRegistry()
	db, err := Open(t.TempDir(), testLogger(t), reg, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sid := createTest(t, db, "b", time.Minute).ID
	writeMemtables(t, db, sid, 0, 24)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		released := promtest.Value(t, reg, "sketchd_store_builder_pool_released_bytes_total")
		if released >= 8<<20 {
			t.Logf("released %d MiB", int64(released)>>20)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sketchd_store_builder_pool_released_bytes_total = %v after 20 s, want the flush builders' 8 MiB or more", released)
		}
	}
}
