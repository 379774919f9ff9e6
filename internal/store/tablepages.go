package store

import (
	"bufio"
	"bytes"
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
// it again from there, a minor fault (about a microsecond: the
// dashboard's few MiB of hot table pages cost milliseconds a second).
// Releasing only new tables is not enough: what a query or a compaction
// reads stays mapped, and the runner's check of a day's answers read
// 220 MiB of tables and held them. The process's table pages are then
// those read or written in the last interval, and the page cache, which
// the kernel reclaims first when its pages are not mapped, holds the
// rest.
//
// MADV_DONTNEED must only reach a mapping that is still the table's: one
// Badger unmaps (a table deleted after a compaction, when its last
// reference goes) and the runtime maps anew at the same address would
// lose its contents. A Badger iterator holds a reference on every table
// of the levels when it is made (levelHandler.appendIterators), and a
// table leaves the levels once and never comes back. So a table that
// db.Tables() listed at the previous pass and lists again after the
// iterator is made was in the levels throughout, is referenced by the
// iterator, and stays mapped where /proc/self/maps showed it until the
// iterator is closed. A new table waits for the next pass.

// tableMapping is one mapping of an LSM table's file in /proc/self/maps.
type tableMapping struct {
	start, end uintptr
	id         uint64
}

// tablePages releases the pages of one Badger family's tables.
type tablePages struct {
	db       *badger.DB
	dir      string          // the family's directory, symlinks resolved
	listed   map[uint64]bool // the tables in the levels at the last pass
	released map[uint64]bool // tables released before, until they leave the levels
}

func newTablePages(db *badger.DB, dir string) *tablePages {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return &tablePages{db: db, dir: dir, listed: map[uint64]bool{}, released: map[uint64]bool{}}
}

// release releases the tables of maps (the process's /proc/self/maps)
// that were in the levels at the last pass and still are, and returns how
// many of them were released for the first time and the bytes of the
// mappings released. Call it only while the DB is open.
func (tp *tablePages) release(maps []byte) (tables int, bytes int64) {
	txn := tp.db.NewTransaction(false)
	it := txn.NewIterator(badger.IteratorOptions{}) // references every table of the levels
	defer txn.Discard()
	defer it.Close()
	listed := map[uint64]bool{}
	for _, t := range tp.db.Tables() {
		listed[t.ID] = true
	}
	for _, m := range parseTableMappings(maps, tp.dir) {
		if !tp.listed[m.id] || !listed[m.id] {
			continue // not referenced by it for sure: next time
		}
		if madviseDontNeed(m.start, m.end-m.start) == nil {
			bytes += int64(m.end - m.start)
		}
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
	tp.listed = listed
	return tables, bytes
}

// parseTableMappings returns the mappings in maps (the text of
// /proc/<pid>/maps) of files dir/<id>.sst: Badger's tables of the family
// in dir (not of its subdirectories, which are other families).
func parseTableMappings(maps []byte, dir string) []tableMapping {
	var out []tableMapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) != 6 || filepath.Dir(f[5]) != dir {
			continue
		}
		name := filepath.Base(f[5])
		if !strings.HasSuffix(name, ".sst") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
		if err != nil {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, tableMapping{start: uintptr(start), end: uintptr(end), id: id})
	}
	return out
}
