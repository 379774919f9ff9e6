package store

// Benchmarks on real Badger in a temp dir, DefaultOptions. Reproduce with
//
//	go test ./internal/store -run '^$' -bench . -benchmem -benchtime 2s
//
// and the RSS figure of the package doc with
//
//	SKETCHD_STORE_RSS=1 go test ./internal/store -run '^$' -bench RSS -benchtime 1x

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

const benchBlob = 2048

// BenchmarkCommit commits flushes of 100 panes of one 2 KiB blob (distinct
// keys, each flush a new minute), each with db.Sync.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("panes=%d", n), func(b *testing.B) {
			db := openTest(b, b.TempDir(), quietOptions())
			sid := createTest(b, db, "bench", time.Minute).ID
			ps := make([]sketchd.PaneRecord, n)
			for i := range ps {
				ps[i] = pane(fmt.Sprintf("key-%05d", i), 0, 1, blob(uint64(i), benchBlob))
			}
			b.SetBytes(int64(n * benchBlob))
			b.ReportAllocs()
			ctx := context.Background()
			flushes := 0
			for b.Loop() {
				flushes++
				for i := range ps {
					ps[i].Start = int64(flushes) * minute
				}
				err := db.Commit(ctx, sid, sketchd.Flush{Panes: ps, Checkpoint: sketchd.Checkpoint{Position: uint64(flushes)}})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(flushes*n)/b.Elapsed().Seconds(), "panes/s")
		})
	}
}

// BenchmarkScanPanes reads 60 and 1440 consecutive 1-minute panes of one
// key (2 KiB blob each) among 10 keys with a day of panes each
// (optionsFromEnv).
func BenchmarkScanPanes(b *testing.B) {
	o := quietOptions()
	optionsFromEnv(&o)
	db := openTest(b, b.TempDir(), o)
	sid := createTest(b, db, "bench", time.Minute).ID
	fillDay(b, db, sid, 10, 1440, benchBlob)
	ctx := context.Background()
	for _, n := range []int{60, 1440} {
		b.Run(fmt.Sprintf("panes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			from := int64(1440-n) * minute
			for b.Loop() {
				got := 0
				err := db.ScanPanes(ctx, sid, []string{"key-00005"}, from, day, func(p sketchd.PaneRecord) error {
					got++
					return nil
				})
				if err != nil || got != n {
					b.Fatalf("got %d panes, err %v", got, err)
				}
			}
		})
	}
}

// BenchmarkKeys lists 10,000 keys of one day from the key index: the whole
// day (index only) and the last hour (one seek per key to check it).
func BenchmarkKeys(b *testing.B) {
	db := openTest(b, b.TempDir(), quietOptions())
	sid := createTest(b, db, "bench", time.Minute).ID
	const keys = 10_000
	var ps []sketchd.PaneRecord
	for k := range keys {
		// Two panes per key: minute k%1440 and 23:59.
		ps = append(ps, pane(fmt.Sprintf("key-%05d", k), int64(k%1439)*minute, 1, blob(uint64(k), 64)),
			pane(fmt.Sprintf("key-%05d", k), 1439*minute, 2, blob(uint64(k), 64)))
	}
	commit(b, db, sid, 1, ps...)
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		from, to int64
	}{{"day", 0, day}, {"last-hour", 23 * hour, day}, {"all-time", math.MinInt64, math.MaxInt64}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if err := db.Keys(ctx, sid, c.from, c.to, func(string) error { n++; return nil }); err != nil || n != keys {
					b.Fatalf("got %d keys, err %v", n, err)
				}
			}
		})
	}
}

// BenchmarkKeysBigPanes lists the last hour of 500 keys whose panes are
// 8-40 KiB (the size of a dashboard stream's panes), each key with a pane
// before the hour and one inside it: every key's span is cut, so the
// listing must prove a pane in the hour (the first listing, or every one
// before the pane memo). Values are inline, and a Badger
// seek copies the values of the items it lands on, so this measures what a
// listing copies besides the key index.
//
//	go test ./internal/store -run '^$' -bench KeysBigPanes -benchmem -count 6
func BenchmarkKeysBigPanes(b *testing.B) {
	db := openTest(b, b.TempDir(), quietOptions())
	sid := createTest(b, db, "bench", time.Minute).ID
	const keys = 500
	for k := range keys {
		size := (8 + 8*(k%5)) << 10
		commit(b, db, sid, uint64(k+1),
			pane(fmt.Sprintf("key-%05d", k), int64(k%1380)*minute, 1, blob(uint64(k), size)),
			pane(fmt.Sprintf("key-%05d", k), 23*hour+30*minute, 2, blob(uint64(k)+keys, size)))
	}
	ctx := context.Background()
	// repeated: the last hour listed again (once per commit); first: each
	// listing the first since the store started (or a drop); before-newest:
	// a first listing of a range that ends before each key's newest pane
	// (the store seeks back from its end).
	for _, c := range []struct {
		name     string
		from, to int64
		forget   bool
	}{{"repeated", 23 * hour, day, false}, {"first", 23 * hour, day, true}, {"first-before-newest", 0, 23 * hour, true}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.forget {
					db.forgetPaneMemo()
				}
				n := 0
				if err := db.Keys(ctx, sid, c.from, c.to, func(string) error { n++; return nil }); err != nil || n != keys {
					b.Fatalf("got %d keys, err %v", n, err)
				}
			}
		})
	}
}

// fillDay commits nKeys keys x nPanes one-minute panes from time 0.
func fillDay(tb testing.TB, db *DB, sid uint32, nKeys, nPanes, size int) {
	tb.Helper()
	for m := range nPanes {
		var ps []sketchd.PaneRecord
		for k := range nKeys {
			ps = append(ps, pane(fmt.Sprintf("key-%05d", k), int64(m)*minute, uint64(m+1), blob(uint64(m*nKeys+k), size)))
		}
		// The watermark at the minute's end, as ingestion's would be: the
		// minutes a lateness before it are final (settled: openfam.go).
		commitWM(tb, db, sid, int64(m+1)*minute, ps...)
	}
}

// BenchmarkRSS commits 200,000 panes (1,000 keys x 200 minutes, one 2 KiB
// blob each, 200 flushes of 1,000 panes, each synced) with DefaultOptions
// (memtables of SKETCHD_STORE_MEMTABLE_MB if set), reads a day of one key
// back, and reports the process's memory right after the writes and after
// 20 s idle (Badger releases its pooled table-builder buffers one every 2 s
// once idle): RSS, its anonymous and file-backed parts and peak (MB, from
// /proc/self/status), the Go heap in use and the store directory. One
// iteration is the whole burst; RSS is the process's, so run it alone:
//
//	SKETCHD_STORE_RSS=1 go test ./internal/store -run '^$' -bench RSS -benchtime 1x
func BenchmarkRSS(b *testing.B) {
	if os.Getenv("SKETCHD_STORE_RSS") == "" {
		b.Skip("set SKETCHD_STORE_RSS=1 to measure (a minute, and it reads the whole process's RSS)")
	}
	o := DefaultOptions()
	o.RetentionInterval = -1
	if mb, err := strconv.Atoi(os.Getenv("SKETCHD_STORE_MEMTABLE_MB")); err == nil && mb > 0 {
		o.MemTableSize = int64(mb) << 20
	}
	if mb, err := strconv.Atoi(os.Getenv("SKETCHD_STORE_BLOCK_CACHE_MB")); err == nil {
		o.BlockCacheSize = int64(mb) << 20 // positive: compressed tables; negative: the default (uncompressed)
	}
	optionsFromEnv(&o)
	b.Logf("memtable %d MiB, block cache %d MiB, base table %d MiB, GOMEMLIMIT %q",
		o.MemTableSize>>20, o.BlockCacheSize>>20, o.BaseTableSize>>20, os.Getenv("GOMEMLIMIT"))
	const keys, minutes = 1000, 200
	var db *DB
	peak := samplePeakHeap(b)
	for b.Loop() {
		db = openTest(b, b.TempDir(), o)
		sid := createTest(b, db, "rss", time.Minute).ID
		ps := make([]sketchd.PaneRecord, keys)
		for m := range minutes {
			for k := range ps {
				ps[k] = pane(fmt.Sprintf("key-%05d", k), int64(m)*minute, uint64(m+1), blob(uint64(m*keys+k), benchBlob))
			}
			commit(b, db, sid, uint64(m+1), ps...)
		}
		// Read a day of one key back, as a query would.
		if got := scanAll(b, db, sid, []string{"key-00007"}, 0, day); len(got) != minutes {
			b.Fatalf("read back %d panes", len(got))
		}
	}
	b.ReportMetric(float64(keys*minutes*b.N)/b.Elapsed().Seconds(), "panes/s")
	report := func(prefix string) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for _, f := range []struct{ unit, field string }{
			{"rss-MB", "VmRSS"}, {"anon-MB", "RssAnon"}, {"file-MB", "RssFile"}, {"peak-rss-MB", "VmHWM"},
		} {
			b.ReportMetric(float64(procStatusKB(f.field))/1024, prefix+f.unit)
		}
		b.ReportMetric(float64(ms.HeapInuse>>20), prefix+"heap-MB")
		b.ReportMetric(float64(dirSize(b, db)>>20), prefix+"dir-MB")
	}
	b.ReportMetric(float64(peak()>>20), "peak-heap-MB")
	runtime.GC()
	report("")
	if path := os.Getenv("SKETCHD_STORE_HEAPPROFILE"); path != "" {
		writeHeapProfile(b, path)
	}
	time.Sleep(20 * time.Second)
	runtime.GC()
	report("idle-")
}

// samplePeakHeap samples the Go heap's live and unswept objects every 5 ms
// until the returned function is called, which returns the highest: the
// transient allocations of Badger's flushes and compactions (table
// builders) that a sample after the writes does not see.
func samplePeakHeap(b *testing.B) func() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var peak uint64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			rtmetrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-done }
}

func dirSize(t testing.TB, db *DB) int64 {
	var n int64
	_ = filepath.WalkDir(db.dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// procStatusKB returns a kB field of /proc/self/status (0 where there is
// none).
func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// writeHeapProfile writes the heap profile (what is in use now) to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// optionsFromEnv sets, for the store benchmarks (SteadyCommit, ScanPanes,
// RSS), o.BaseTableSize from SKETCHD_STORE_BASE_TABLE_MB when it is a
// positive number of MiB and o.BuilderDrainInterval from
// SKETCHD_STORE_BUILDER_DRAIN when it is a duration, so that one binary
// compares settings.
func optionsFromEnv(o *Options) {
	if mb, err := strconv.Atoi(os.Getenv("SKETCHD_STORE_BASE_TABLE_MB")); err == nil && mb > 0 {
		o.BaseTableSize = int64(mb) << 20
	}
	if d, err := time.ParseDuration(os.Getenv("SKETCHD_STORE_BUILDER_DRAIN")); err == nil {
		o.BuilderDrainInterval = d
	}
}

// BenchmarkScanOpenTails reads the open panes of 180 keys (two each, of
// 18 KB: the load runner's live stream, a minute and the one before) as a
// query's open tail does once per commit, with a seek per key and with one
// walk (openwalk.go); compare B/op:
//
//	go test ./internal/store -run '^$' -bench ScanOpenTails
func BenchmarkScanOpenTails(b *testing.B) {
	db := openTest(b, b.TempDir(), quietOptions())
	sid := createTest(b, db, "bench", time.Minute).ID
	keys := make([]string, 180)
	var ps []sketchd.PaneRecord
	for k := range keys {
		keys[k] = fmt.Sprintf("country=%02d\x00device=%d", k/9, k%9)
		for m := range 2 {
			ps = append(ps, pane(keys[k], int64(60+m)*minute, uint64(k+1), blob(uint64(2*k+m), 18<<10)))
		}
	}
	commitWM(b, db, sid, 61*minute, ps...) // both minutes open
	ctx := context.Background()
	for _, c := range []struct {
		name string
		min  int
	}{{"seek", math.MaxInt}, {"walk", openWalkMin}} {
		b.Run(c.name, func(b *testing.B) {
			old := openWalkMin
			openWalkMin = c.min
			defer func() { openWalkMin = old }()
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if err := db.ScanPanes(ctx, sid, keys, 60*minute, 3*hour, func(sketchd.PaneRecord) error { n++; return nil }); err != nil || n != 2*len(keys) {
					b.Fatalf("got %d panes, err %v", n, err)
				}
			}
		})
	}
}
