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
// So the store releases each new table's pages from the process, every
// Options.TablePagesInterval: madvise(MADV_DONTNEED) on its mapping,
// which for a shared file mapping drops the page-table entries and keeps
// the (clean, msynced) pages in the page cache; the next read of a page
// maps it again from there, a minor fault. What a query or a compaction
// reads afterwards is mapped as before, and stays mapped: a check of a
// day's answers read 220 MiB of tables in the runner and held them. So
// every tablePagesFullEvery intervals the store releases every table's
// pages: the process's table pages are then those read since, and the
// page cache, which the kernel reclaims first when they are not mapped,
// holds the rest.
//
// MADV_DONTNEED must only reach a mapping that is still the table's: one
// Badger unmaps (a table deleted after a compaction, when its last
// reference goes) and the runtime maps anew at the same address would
// lose its contents. A Badger iterator holds a reference on every table
// of the levels when it is made (levelHandler.appendIterators), so a
// table listed by db.Tables() both before and after the iterator is made
// was in the levels throughout, is referenced by the iterator, and stays
// mapped where /proc/self/maps showed it until the iterator is closed.

// tablePagesFullEvery is how many TablePagesIntervals apart the store
// releases the pages of every table, not only of new ones: a page read
// again within them costs a minor fault each time (about a microsecond).
const tablePagesFullEvery = 10

// tableMapping is one mapping of an LSM table's file in /proc/self/maps.
type tableMapping struct {
	start, end uintptr
	id         uint64
}

// tablePages releases the pages of new tables of one Badger family.
type tablePages struct {
	db       *badger.DB
	dir      string          // the family's directory, symlinks resolved
	released map[uint64]bool // tables released, until they leave the levels
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

// release releases the tables of maps (the process's /proc/self/maps)
// not released before, or all of them, that are in the levels
// throughout, and returns how many were released the first time and the
// bytes of the mappings released. Call it only while the DB is open.
func (tp *tablePages) release(maps []byte, all bool) (tables int, bytes int64) {
	fresh := tp.candidates(maps, all)
	if len(fresh) == 0 {
		return 0, 0
	}
	before := tableIDs(tp.db)
	txn := tp.db.NewTransaction(false)
	it := txn.NewIterator(badger.IteratorOptions{}) // references every table of the levels
	after := tableIDs(tp.db)
	for _, m := range fresh {
		if !before[m.id] || !after[m.id] {
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
	it.Close()
	txn.Discard()
	for id := range tp.released {
		if !after[id] {
			delete(tp.released, id)
		}
	}
	return tables, bytes
}

// candidates returns the mappings of the family's tables in maps: all, or
// those not released yet.
func (tp *tablePages) candidates(maps []byte, all bool) []tableMapping {
	var out []tableMapping
	for _, m := range parseTableMappings(maps, tp.dir) {
		if all || !tp.released[m.id] {
			out = append(out, m)
		}
	}
	return out
}

func tableIDs(db *badger.DB) map[uint64]bool {
	ids := map[uint64]bool{}
	for _, t := range db.Tables() {
		ids[t.ID] = true
	}
	return ids
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
