package store

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/promtest"
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
		for _, ti := range db.open.Tables() {
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

// TestCompactionMetrics: the compaction that commits beyond level 0's
// table count start shows in
// sketchd_store_compaction_written_bytes_total (Badger's expvars are
// process-wide, so the test compares before and after), and the gauge of
// tables being compacted is exported.
func TestCompactionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := quietOptions()
	o.MemTableSize = 1 << 20 // several level-0 tables from a few commits
	db := openTest(t, t.TempDir(), o)
	// openTest has no registry: a second store on the same registry
	// would clash, so the collectors are read from a registry of their own.
	if err := reg.Register(newCompactionVars()); err != nil {
		t.Fatal(err)
	}
	written := func() float64 {
		total := 0.0
		for series, v := range promtest.Series(t, reg) {
			if strings.HasPrefix(series, "sketchd_store_compaction_written_bytes_total{") {
				total += v
			}
		}
		return total
	}
	before := written()
	sid := createTest(t, db, "c", time.Minute).ID
	for i := range 40 { // 13 MB: more level-0 tables than start a compaction
		var ps []sketchd.PaneRecord
		for k := range 40 {
			ps = append(ps, pane(fmt.Sprintf("k%02d", k), int64(i)*minute, uint64(i+1), blob(uint64(i*40+k), 8<<10)))
		}
		commit(t, db, sid, uint64(i+1), ps...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for written() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no compaction bytes written 30 s after 13 MB of commits (%v before, %v now)", before, written())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := promtest.Series(t, reg)["sketchd_store_compaction_tables"]; !ok {
		t.Error("sketchd_store_compaction_tables not exported")
	}
}
