package store

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestCompressionSwitch: by default tables are written uncompressed; a
// block cache (BlockCacheSize > 0) writes Snappy-compressed tables; and a
// store reopened with the other setting reads every pane either wrote,
// because each table records its own compression.
func TestCompressionSwitch(t *testing.T) {
	dir := t.TempDir()
	compressed := quietOptions()
	compressed.BlockCacheSize = 16 << 20
	zeros := bytes.Repeat([]byte{0}, 4096) // compresses well
	var keys, want []string
	for k := range 200 {
		keys = append(keys, fmt.Sprintf("k%03d", k))
	}
	steps := []struct {
		name       string
		opts       Options
		compressed bool
	}{{"compressed", compressed, true}, {"default", quietOptions(), false}, {"compressed again", compressed, true}}
	for i, s := range steps {
		db, err := Open(dir, testLogger(t), nil, s.opts)
		if err != nil {
			t.Fatalf("%s: Open: %v", s.name, err)
		}
		var sid uint32
		if i == 0 {
			sid = createTest(t, db, "c", time.Minute).ID
		} else if info, err := db.Stream(t.Context(), "c"); err != nil {
			t.Fatalf("%s: Stream: %v", s.name, err)
		} else {
			sid = info.ID
		}
		// Each step adds 200 panes of its own minute.
		var ps []sketchd.PaneRecord
		for _, key := range keys {
			ps = append(ps, pane(key, int64(i)*minute, uint64(i+1), zeros))
		}
		commit(t, db, sid, uint64(i+1), ps...)
		if err := db.Close(); err != nil { // the memtable becomes an L0 table
			t.Fatalf("%s: Close: %v", s.name, err)
		}
		db, err = Open(dir, testLogger(t), nil, s.opts)
		if err != nil {
			t.Fatalf("%s: reopen: %v", s.name, err)
		}
		// The newest table holds this step's panes; its size says
		// whether it was compressed.
		var newest uint64
		var onDisk, raw uint32
		for _, ti := range db.bdb.Tables() {
			if ti.ID >= newest {
				newest, onDisk, raw = ti.ID, uint32(ti.OnDiskSize), ti.UncompressedSize
			}
		}
		t.Logf("%s: newest table %d bytes on disk, %d uncompressed", s.name, onDisk, raw)
		if got := onDisk < raw/2; got != s.compressed {
			t.Errorf("%s: newest table %d bytes on disk for %d uncompressed: compressed = %v, want %v", s.name, onDisk, raw, got, s.compressed)
		}
		want = nil
		for _, key := range keys {
			for j := range i + 1 {
				want = append(want, fmt.Sprintf("%s@%d", key, int64(j)*minute))
			}
		}
		if got := scanAll(t, db, sid, keys, 0, day); !slices.Equal(got, want) {
			t.Errorf("%s: read back %d panes, want %d: %v...", s.name, len(got), len(want), got[:min(len(got), 5)])
		}
		if err := db.Close(); err != nil {
			t.Fatalf("%s: Close: %v", s.name, err)
		}
	}
}
