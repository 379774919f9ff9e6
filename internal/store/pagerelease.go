package store

import (
	"cmp"
	"math"
	"sync/atomic"

	"github.com/sketchd/sketchd/internal/procmem"
)

// When the loop releases table pages (tablepages.go). A pass every
// TablePagesInterval keeps the tables' pages in the process to those read
// or written in the last interval, but bursts fill it faster than that:
// at the sampled RSS peaks of the load runner the file pages stood
// 130-160 MiB over the anonymous memory while cold queries ran, and
// 110-170 MiB in the heavy phase's write burst (its moves out of the open
// family, compactions and memtable flushes; docs/operations.md, "Table
// pages"). And every pass costs the pages it released the next time they
// are read (a minor fault each): the hot tables, read at every commit, are
// released and faulted in again at every pass. So the loop ticks
// ticksPerPass times per interval, reads the process's resident file pages
// (/proc/self/statm: whatever read or wrote the tables, Badger's own
// iterators and table builders included) and, with the files' base the
// larger of Options.TablePagesTarget and the file pages the last pass left,
// runs
//
//   - nothing while the file pages are within TablePagesTarget: the pages
//     the process holds fit its memory limit's share for them;
//   - in a pass, the memtable and value logs paged out first, then the
//     families' tables released coldest first (releaseOrder) until the
//     file pages are within the target;
//   - a full pass when they are over it, at the ticksPerPass-th tick
//     since the last pass, and at every tick while Badger compacts (its
//     expvar of tables in running compactions is above 0);
//   - a full pass at any tick where they stand growthKick over the base:
//     a burst, released at once;
//   - a quick pass (the last full pass's tables and maps again, without
//     reading /proc/self/maps) when the scans have read readKick bytes of
//     values since the last kick (noteRead: faster than a tick, and from
//     the request path, so it must be cheap) and the file pages are over
//     the target.
//
// With no target (0) every tick's file pages are over it: a pass every
// interval, every tick while compacting, and growth measured from what
// the last pass left, as before 2026-12-08. Then in the runner's vegeta
// phase the passes took 2.31 of sketchd's 21.5 CPU s and the faults of the
// pages they released (Badger's table.(*Table).block reading a released
// block) 1.60 s (s28a, docs/operations.md).
//
// File growth ran a quick pass until 2026-12-07, which cannot see the
// tables written since the last full pass, and a compaction ran a full
// pass every 100 ms: in the runner's heavy phase (300,000 new keys,
// compactions writing 374 MiB) the 100 ms samples then caught 61-97 MiB
// of file pages over the binary's 24 MiB, 39-61 MiB of them the panes
// family's tables at the 2 s samples of /proc/<pid>/smaps (runs at a 352
// and a 400 MiB limit, docs/operations.md, "Table pages").
//
// Everything but noteRead runs in the loop's goroutine.

// ticksPerPass is how many ticks the loop has per TablePagesInterval
// (25 ms at the default 500 ms).
const ticksPerPass = 20

// readKick is how many bytes of stored values the scans read before the
// loop is asked for a quick pass; growthKick how much the resident file
// pages may grow between two ticks' passes. Each pass makes the queries
// fault the hot tables' pages in again (minor faults, from the page
// cache), and in the runner's vegeta phase the passes took 0.66-0.69 s of
// CPU in 28 s against 0.35 s with full passes only, the quick ones about
// 0.37 s with either growthKick, 16 or 32 MiB (BenchmarkPagePasses: a
// full pass 247 µs, a quick one 45 µs). The file growth ran most of them:
// sketchd_store_table_pages_passes_total, scraped at the edges of the
// runner's query phases at a 384 MiB limit (2026-12-07, r384), counted 66
// full, 47 growth and 8 read passes in vegeta's 33 s, 64/23/10 in k6's
// and 373/15/24 in the dashboard's 3 minutes.
const (
	readKick   = 16 << 20
	growthKick = 16 << 20
)

// pageReleaser schedules the passes over the families' tables.
type pageReleaser struct {
	on      bool // TablePagesInterval > 0 on Linux, not in memory
	fams    []*tablePages
	since   int          // ticks since the last pass
	files   int64        // resident file pages after the last pass (bytes)
	failing bool         // the last pass failed: logged once per run of failures
	read    atomic.Int64 // bytes the scans read since the last kick
	kick    chan struct{}
}

func newPageReleaser(db *DB) *pageReleaser {
	pr := &pageReleaser{kick: make(chan struct{}, 1)}
	if db.opts.TablePagesInterval > 0 && tablePagesSupported && !db.opts.InMemory {
		pr.on = true
		pr.fams = releaseOrder(db)
		pr.files, _ = procmem.ResidentFiles()
	}
	return pr
}

// releaseOrder is the families in the order a pass releases them, the
// coldest first: the panes family (final panes, read when the query
// caches miss), the meta family, then the open family, whose tables every
// commit and every open tail read. A pass stops once the process's file
// pages are within Options.TablePagesTarget, so the open family's pages
// stay mapped when releasing the others was enough: in the load runner's
// vegeta phase, with every family released at each pass over the target,
// the faults of the open tails' walks took 1.02 of sketchd's 17.8 CPU s
// (s28b, docs/operations.md, "Table pages").
func releaseOrder(db *DB) []*tablePages {
	return []*tablePages{newTablePages(db.panes, db.dir), newTablePages(db.meta, metaDir(db.dir)), newTablePages(db.open, openDir(db.dir))}
}

// noteRead counts n bytes of values a scan read, and asks the loop for a
// quick pass each readKick bytes. Safe for concurrent use.
func (pr *pageReleaser) noteRead(n int64) {
	if !pr.on || n <= 0 || pr.read.Add(n) < readKick {
		return
	}
	pr.read.Store(0)
	select {
	case pr.kick <- struct{}{}:
	default: // one is pending
	}
}

// tick is one of the loop's ticksPerPass ticks per interval.
func (pr *pageReleaser) tick(db *DB) {
	pr.since++
	files, ok := procmem.ResidentFiles()
	if !ok {
		files = math.MaxInt64 // unknown: over any target, no growth
	}
	target := db.opts.TablePagesTarget
	_, compacting := compactionCounts()
	switch {
	case ok && files-max(pr.files, target) >= growthKick:
		pr.fullPass(db, "growth")
	case files > target && (pr.since >= ticksPerPass || compacting > 0):
		pr.fullPass(db, "full")
	case ok:
		pr.files = min(pr.files, files) // what the kernel reclaimed or the binary shed
	}
}

// overTarget reports whether the process's resident file pages are over
// Options.TablePagesTarget (or unknown).
func (pr *pageReleaser) overTarget(db *DB) bool {
	files, ok := procmem.ResidentFiles()
	return !ok || files > db.opts.TablePagesTarget
}

// fullPass releases the pages of each family's tables (tablepages.go);
// kind names its trigger in the passes metric: "full" (the clock, or a
// compaction running) or "growth" (the file pages). A failed pass is
// counted, and logged when passes start failing and when they work again.
func (pr *pageReleaser) fullPass(db *DB, kind string) {
	before := make([]map[uint64]bool, len(pr.fams))
	for i, tp := range pr.fams {
		before[i] = tp.tables()
	}
	maps, err := readMaps()
	if err == nil {
		for i, tp := range pr.fams {
			tp.see(before[i], maps) // the logs paged out
		}
		err = pr.releaseWhileOver(db, func(tp *tablePages) (int, int64, error) {
			return tp.releaseMappings(tp.last.before, tp.last.mappings, true)
		})
	}
	db.met.tablePagePasses.WithLabelValues(kind).Inc()
	pr.finish(db, err)
}

// quickPass releases the tables of the last full pass again (quick), when
// the scans have read readKick bytes (noteRead) and the file pages are
// over the target: "quick_reads" in the passes metric.
func (pr *pageReleaser) quickPass(db *DB) {
	if !pr.overTarget(db) {
		return
	}
	err := pr.releaseWhileOver(db, (*tablePages).quick)
	db.met.tablePagePasses.WithLabelValues("quick_reads").Inc()
	pr.finish(db, err)
}

// releaseWhileOver releases the families' tables with release, in
// releaseOrder, until the process's file pages are within the target
// (the logs, or the colder families, were enough), counting what it
// released; it returns the first error.
func (pr *pageReleaser) releaseWhileOver(db *DB, release func(*tablePages) (int, int64, error)) error {
	var err error
	for _, tp := range pr.fams {
		if !pr.overTarget(db) {
			break
		}
		n, bytes, rerr := release(tp)
		db.met.tablePages.Add(float64(n))
		db.met.tablePageBytes.Add(float64(bytes))
		err = cmp.Or(err, rerr)
	}
	return err
}

// finish records a pass: the resident file pages after it (the baseline
// of the next growth), a failure counted, and the changes between
// failing and working logged.
func (pr *pageReleaser) finish(db *DB, err error) {
	pr.since = 0
	pr.files, _ = procmem.ResidentFiles()
	switch {
	case err != nil && !pr.failing:
		db.log.Warn("releasing Badger's table pages from the process failed; they stay resident until the kernel reclaims them", "err", err)
	case err == nil && pr.failing:
		db.log.Info("releasing Badger's table pages works again")
	}
	if err != nil {
		db.met.tablePageErrors.Inc()
	}
	pr.failing = err != nil
}
