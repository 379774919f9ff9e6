package store

import (
	"cmp"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Badger writes every LSM table it builds (memtable flush, compaction)
// through the table's memory map: table.CreateTable copies the built
// table into the new file's mapping and msyncs it. Every page of every
// table written since the process started then stays mapped, resident in
// the process (RssFile), until the kernel reclaims it under pressure:
// in the load runner, 250-300 MiB of a peak RSS of 830 MiB were table
// pages (docs/operations.md, "Memory"), about the whole store, although
// the queries read a small part of it. A table written with write(2)
// would leave those pages in the page cache only, not in the process.
//
// So every Options.TablePagesInterval the store releases every table's
// pages from the process: madvise(MADV_DONTNEED) on its mapping, which
// for a shared file mapping drops the page-table entries and keeps the
// (clean, msynced) pages in the page cache; the next read of a page maps
// it again from there, a minor fault (in the load runner's vegeta phase
// the passes took 0.19 CPU s of 28 once a second, 0.35 s twice a second,
// and sketchd about 1 CPU s more in all: docs/operations.md, "Table
// pages").
// Releasing only new tables is not enough: what a query or a compaction
// reads stays mapped, and the runner's check of a day's answers read
// 220 MiB of tables and held them. The process's table pages are then
// those read or written in the last interval, and the page cache holds
// the rest, which the kernel can reclaim without unmapping it from
// sketchd.
//
// MADV_DONTNEED must only reach a mapping that is still the table's: one
// Badger unmaps (a table deleted after a compaction, when its last
// reference goes) and the runtime maps anew at the same address would
// lose its contents. A Badger iterator holds a reference on every table
// of the levels when it is made (levelHandler.appendIterators), and a
// table leaves the levels once and never comes back. So a pass lists the
// tables (db.Tables()) before it reads /proc/self/maps, makes the
// iterator, and lists them again: a table in both lists was in the levels
// throughout, is referenced by the iterator, and stays mapped where the
// maps showed it until the iterator is closed. A table written since the
// last pass is released by this one.

// tableMapping is one mapping of an LSM table's file in /proc/self/maps.
type tableMapping struct {
	start, end uintptr
	id         uint64
}

// tablePages releases the pages of one Badger family's tables. Its passes
// run in the store's background loop only.
type tablePages struct {
	db       *badger.DB
	dir      string          // the family's directory, symlinks resolved
	released map[uint64]bool // tables released before, until they leave the levels
	// last is what the last full pass saw: the tables listed before it
	// read the maps, and the mappings of the family's tables it read; a
	// quick pass releases them again without reading the maps (quick).
	last struct {
		before   map[uint64]bool
		mappings []tableMapping
	}
}

func newTablePages(db *badger.DB, dir string) *tablePages {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return &tablePages{db: db, dir: dir, released: map[uint64]bool{}}
}

// tables returns the IDs of the tables in the levels now.
func (tp *tablePages) tables() map[uint64]bool {
	ids := map[uint64]bool{}
	for _, t := range tp.db.Tables() {
		ids[t.ID] = true
	}
	return ids
}

// release releases the tables among maps (the process's mapped files,
// read after before was listed by tables) that were in the levels then
// (before) and still are, and returns how many of them were released for
// the first time, the bytes of the mappings released, and the first
// madvise error. Call it only while the DB is open.
func (tp *tablePages) release(before map[uint64]bool, maps []mappedFile) (tables int, bytes int64, err error) {
	tp.see(before, maps)
	return tp.releaseMappings(before, tp.last.mappings, true)
}

// see records before and the family's table mappings among maps as the
// last full pass's (quick releases them), and pages out the family's
// memtable and value logs: written once, read back only to replay after a
// crash, they are the cheapest pages to let go.
func (tp *tablePages) see(before map[uint64]bool, maps []mappedFile) {
	tp.last.before, tp.last.mappings = before, tableMappings(maps, tp.dir)
	for _, m := range logMappings(maps, tp.dir) {
		pageOut(m.start, m.end-m.start)
	}
}

// quick is release with the tables and maps of the last full pass: it
// does not read /proc/self/maps, so it is cheap enough to run whenever
// queries have read a lot of tables (pageReleaser.noteRead), but it sees no table
// written since that pass. Listed before that pass's maps were read and
// listed again after its iterator was made, a table has been in the
// levels, so mapped where those maps showed it, all along.
func (tp *tablePages) quick() (tables int, bytes int64, err error) {
	if tp.last.before == nil {
		return 0, 0, nil
	}
	return tp.releaseMappings(tp.last.before, tp.last.mappings, false)
}

// releaseMappings releases the mappings among ms of tables that were
// listed in before and are listed still, with an iterator open that
// references them. With others, it also asks the kernel to page out the
// family's other table mappings (pageOut: tables being written by a
// compaction or a flush, not in the levels yet, which the rule above
// cannot release), which is safe whatever the mapping has become since
// the maps were read: the kernel only drops clean file pages and never
// loses data. Paged-out pages leave the page cache too: a later read of
// such a table goes to the disk.
func (tp *tablePages) releaseMappings(before map[uint64]bool, ms []tableMapping, others bool) (tables int, bytes int64, err error) {
	txn := tp.db.NewTransaction(false)
	it := txn.NewIterator(badger.IteratorOptions{}) // references every table of the levels
	defer txn.Discard()
	defer it.Close()
	listed := tp.tables()
	for _, m := range ms {
		if !before[m.id] || !listed[m.id] {
			if others {
				pageOut(m.start, m.end-m.start)
			}
			continue // not referenced by it for sure: next time
		}
		if merr := madviseDontNeed(m.start, m.end-m.start); merr != nil {
			err = cmp.Or(err, merr)
			continue
		}
		bytes += int64(m.end - m.start)
		if !tp.released[m.id] {
			tp.released[m.id] = true
			tables++
		}
	}
	for id := range tp.released {
		if !listed[id] {
			delete(tp.released, id)
		}
	}
	return tables, bytes, err
}

// mappedFile is one mapping of a file in the process (/proc/self/maps).
type mappedFile struct {
	start, end uintptr
	path       string
}

// logMappings returns the mappings of the family's memtable logs
// (dir/<id>.mem) and value logs (dir/<id>.vlog) among files. Badger writes
// them through their mappings too, so what a write burst appended stays
// resident (up to 14 MiB per family in the load runner's samples). The
// store only pages them out (pageOut): what is synced is on disk, what is
// not stays, and Badger reads them back only to replay after a crash.
func logMappings(files []mappedFile, dir string) []mappedFile {
	var out []mappedFile
	for _, f := range files {
		if (strings.HasSuffix(f.path, ".mem") || strings.HasSuffix(f.path, ".vlog")) && filepath.Dir(f.path) == dir && f.end > f.start {
			out = append(out, f)
		}
	}
	return out
}

// tableMappings returns the mappings of files dir/<id>.sst among files:
// Badger's tables of the family in dir (not of its subdirectories, which
// are other families; not of deleted files, whose path ends in
// " (deleted)").
func tableMappings(files []mappedFile, dir string) []tableMapping {
	var out []tableMapping
	for _, f := range files {
		name, ok := strings.CutSuffix(f.path, ".sst")
		if !ok || filepath.Dir(f.path) != dir || f.end <= f.start {
			continue
		}
		id, err := strconv.ParseUint(filepath.Base(name), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, tableMapping{start: f.start, end: f.end, id: id})
	}
	return out
}
