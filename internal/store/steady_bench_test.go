package store

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// BenchmarkSteadyCommit is the write load of a live stream: every flush
// rewrites the open pane of each of 180 keys (6 KiB of sketches each, a
// new minute every 60 flushes, the watermark a second further each) over
// a store that already holds history minutes of those keys today (1 KiB
// panes, final). What it costs includes
// Badger's background work, memtable flushes and compactions, which runs
// on other goroutines while the commits return: it reports the whole
// process's CPU time per flush (getrusage) and the bytes it wrote per
// flush (/proc/self/io write_bytes, counted when pages are dirtied; a
// flush commits 1.05 MiB), besides the commit's own time (ns/op). Pane
// keys are key-major within a day's partition (docs/format.md), and a
// commit writes the checkpoint and the key index beside the panes, so
// every level-0 table spans the stream's whole key space and a compaction
// of level 0 merges with every table in the level below (hourly
// partitions did not change that: docs/operations.md): what that rewrites
// depends on how much sits there, which Badger's level sizing decides. Run it alone, it measures the process:
//
//	go test ./internal/store -run '^$' -bench SteadyCommit -benchtime 300x
//
// At de2b369 on the 2-core machine (two runs, equal within 6%; the
// filling's own compactions settled first): 2.26, 3.63, 2.47 and 3.49 MiB
// written and 33, 59, 38 and 56 ms of CPU per flush for 60, 360, 600 and
// 1,380 minutes of history: not in order of the history.
// SKETCHD_STORE_L0_TABLES=10 starts compactions at 10 level-0 tables
// instead of 5 (writes stall at 20): 3.32 MiB per flush at 600 minutes,
// worse. SKETCHD_STORE_BUILDER_DRAIN sets BuilderDrainInterval: at 600
// minutes 6.4 MiB allocated per flush with the default 1 s, 5.8 at 10 s,
// 5.7 never drained (of which 1.05 MiB are the benchmark's own blobs); the
// GC cycles per flush (0.11, 0.03, 0.03) follow the heap's size here,
// which the pool makes larger. SKETCHD_STORE_BASE_TABLE_MB sets
// BaseTableSize: at 360 minutes (6 interleaved runs each, 2026-12-06)
// 4 MiB tables allocated 6.43 MiB per flush against 9.14 with the default
// 2 (-30%), wrote 2.89 against 3.43 MiB (-16%) and used 38 against 49 ms
// of CPU: Badger allocates a 3 MiB index builder per table whatever its
// size. Not the default: the larger builders cost memory in a write
// burst (GOMEMLIMIT=512MiB BenchmarkRSS, 3 interleaved runs each: peak
// RSS 853-919 against 738-808 MiB, anonymous 291-379 against 252-273 MiB).
// With SKETCHD_STORE_BUILDER_DRAIN=250ms beside 4 MiB tables: 6.77
// against 9.21 MiB per flush (-26%), 2.89 against 3.40 MiB written, the
// same GC cycles per flush, and a peak RSS of 841-849 against 770-806 MiB.
//
// All the figures above are of format 2, where the open panes were
// rewritten in the day's key range. With format 3's open family
// (openfam.go), at 9fd9006 against 1d1e229 on the 2-vCPU Intel Xeon
// machine of 2026-12-06 (test binaries interleaved, two runs each, 360 and
// 1,380 minutes of history): CPU per flush 36.7-39.4 -> 19.4-22.9 ms,
// allocated 9.0-10.4 -> 5.0-5.4 MiB, written 3.43-3.67 -> 2.21-2.24 MiB,
// GC cycles 0.08-0.13 -> 0.06-0.08 per flush.
func BenchmarkSteadyCommit(b *testing.B) {
	for _, history := range []int{60, 360, 600, 1380} { // the flushes stay in the same day
		b.Run(fmt.Sprintf("history=%dm", history), func(b *testing.B) {
			o := quietOptions()
			if n, err := strconv.Atoi(os.Getenv("SKETCHD_STORE_L0_TABLES")); err == nil && n > 0 {
				o.NumLevelZeroTables, o.NumLevelZeroTablesStall = n, n+10
			}
			optionsFromEnv(&o)
			db := openTest(b, b.TempDir(), o)
			sid := createTest(b, db, "steady", time.Minute).ID
			const keys = 180
			fillDay(b, db, sid, keys, history, 1024)
			settleCompactions(b)
			ps := make([]sketchd.PaneRecord, keys)
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0, io0 := cpuTime(), writeBytes()
			flushes := 0
			for b.Loop() {
				flushes++
				m := int64(history + flushes/60)
				for k := range ps {
					ps[k] = pane(fmt.Sprintf("key-%05d", k), m*minute, uint64(flushes), blob(uint64(flushes*keys+k), 6<<10))
				}
				// A flush a second: the watermark moves a second each.
				commitWM(b, db, sid, m*minute+int64(flushes%60)*int64(time.Second), ps...)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(flushes), "cpu-ms/flush")
			b.ReportMetric(float64(writeBytes()-io0)/(1<<20)/float64(flushes), "written-MiB/flush")
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20)/float64(flushes), "alloc-MiB/flush")
			b.ReportMetric(float64(ms1.NumGC-ms0.NumGC)/float64(flushes), "gc/flush")
		})
	}
}

// settleCompactions waits until Badger has run no compaction for a
// second (at most a minute), so that the filling's compactions are not
// charged to the flushes measured after it.
func settleCompactions(b *testing.B) {
	idle, deadline := 0, time.Now().Add(time.Minute)
	for idle < 20 && time.Now().Before(deadline) {
		if _, tables := compactionCounts(); tables > 0 {
			idle = 0
		} else {
			idle++
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBytes is /proc/self/io's write_bytes: what the process has written
// to storage, counted when it dirtied the pages (0 where there is none).
func writeBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := strings.CutPrefix(string(line), "write_bytes:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
