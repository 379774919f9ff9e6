package store

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
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
	for _, bdb := range []*badger.DB{db.panes, db.open} {
		if err := bdb.Flatten(2); err != nil {
			t.Fatalf("Flatten: %v", err)
		}
	}
	o = o.withDefaults()
	limit := o.BaseTableSize + 2*size // a table closes after the entry that crosses its size
	var n, over int
	var largest int64
	for _, ti := range append(db.panes.Tables(), db.open.Tables()...) {
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

// TestLargePaneWithSmallMemtables commits, with the default 8 MiB
// memtables (a 1.2 MiB transaction cap), a pane just under
// MaxPaneEntryBytes (its value goes to the value log) and one just under
// ValueThreshold (inline), reads both back, and checks that a larger pane
// and, with 4 MiB memtables (where an inline pane may not fit a
// transaction), a 2 MiB pane are refused with ErrInvalid.
func TestLargePaneWithSmallMemtables(t *testing.T) {
	o := quietOptions()
	db := openTest(t, t.TempDir(), o)
	sid := createTest(t, db, "big", time.Minute).ID
	if limit := db.panes.MaxBatchSize(); limit >= MaxPaneEntryBytes {
		t.Fatalf("transaction cap %d is not below MaxPaneEntryBytes %d: the test proves nothing", limit, MaxPaneEntryBytes)
	}
	big := pane("big", 0, 1, blob(1, 1<<20), blob(2, MaxPaneEntryBytes-(1<<20)-4096))
	inline := pane("inline", 0, 1, blob(3, (1<<20)-4096))
	if err := db.Commit(t.Context(), sid, sketchd.Flush{Panes: []sketchd.PaneRecord{big, inline}, Checkpoint: sketchd.Checkpoint{Position: 1}}); err != nil {
		t.Fatalf("Commit of a %d-byte and a %d-byte pane: %v", paneValueLen(&big), paneValueLen(&inline), err)
	}
	var got []sketchd.PaneRecord
	if err := db.ScanPanes(t.Context(), sid, []string{"big", "inline"}, 0, day, func(p sketchd.PaneRecord) error {
		got = append(got, p)
		return nil
	}); err != nil {
		t.Fatalf("ScanPanes: %v", err)
	}
	if len(got) != 2 || !equalPane(got[0], big) || !equalPane(got[1], inline) {
		t.Fatalf("read back %d panes, want the two committed", len(got))
	}
	tooBig := pane("huge", 0, 1, blob(4, MaxPaneEntryBytes))
	if err := db.Commit(t.Context(), sid, sketchd.Flush{Panes: []sketchd.PaneRecord{tooBig}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("pane over MaxPaneEntryBytes: err %v, want ErrInvalid", err)
	}

	o.MemTableSize = 4 << 20
	small := openTest(t, t.TempDir(), o)
	sid = createTest(t, small, "big", time.Minute).ID
	if err := small.Commit(t.Context(), sid, sketchd.Flush{Panes: []sketchd.PaneRecord{big}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("2 MiB pane with 4 MiB memtables: err %v, want ErrInvalid", err)
	}
}
