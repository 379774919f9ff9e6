package store

import (
	"testing"
	"time"
)

// TestCompactionTablesStayBaseSize writes about 48 MB of incompressible
// panes (so the LSM tree has levels below Badger's base level, where its
// default TableSizeMultiplier of 2 doubles the table size per level),
// compacts everything into the last level, and checks that no table is
// larger than BaseTableSize plus one block: the size of the table builders
// Badger keeps pooled follows the largest table, see Options.TableSizeMultiplier.
func TestCompactionTablesStayBaseSize(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 48 MB")
	}
	o := quietOptions()
	o.NumLevelZeroTables = 1 // compact every flushed memtable
	db := openTest(t, t.TempDir(), o)
	sid := createTest(t, db, "tables", time.Minute).ID
	const keys, minutes, size = 200, 60, 4 << 10
	fillDay(t, db, sid, keys, minutes, size)
	if err := db.bdb.Flatten(2); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	o = o.withDefaults()
	limit := o.BaseTableSize + 2*size // a table closes after the entry that crosses its size
	var n, over int
	var largest int64
	for _, ti := range db.bdb.Tables() {
		if ti.Level == 0 {
			continue // L0 tables are flushed memtables, MemTableSize each
		}
		n++
		sz := int64(ti.OnDiskSize)
		largest = max(largest, sz)
		if sz > limit {
			over++
		}
	}
	t.Logf("%d tables below L0, largest %d KiB (base %d KiB)", n, largest>>10, o.BaseTableSize>>10)
	if n < 10 {
		t.Fatalf("only %d tables below L0: the test wrote too little to have deeper levels", n)
	}
	if over > 0 {
		t.Errorf("%d of %d tables exceed BaseTableSize+2 panes (%d KiB); largest %d KiB", over, n, limit>>10, largest>>10)
	}
}
