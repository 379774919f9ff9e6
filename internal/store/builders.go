package store

import (
	"reflect"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Badger builds every LSM table (memtable flush, compaction) in a
// z.Allocator it takes from a pool of 8 in its DB (allocPool) and returns
// there, each as large as the largest table it ever built (raw blocks
// grown by doubling; with compression on, plus a worst-case compressed
// copy: about 2.6x the table). The pool
// frees one allocator per 2 s only when no table was built meanwhile, which
// a steady write load never allows: at the load runner's query-phase peak
// the pooled allocators held 332 MB of Go heap (docs/operations.md,
// "Memory"). Badger has no option for it, so the store empties the pool
// itself every Options.BuilderDrainInterval: builders then allocate what
// they need, and the GC frees it after them.

// builderPool returns the DB's pool of table-builder allocators, the
// unexported field allocPool of badger.DB (Badger v4.9), or nil if the
// field is not there (TestBuilderPoolFound fails then). Open writes the
// field before it returns, and nothing writes it later.
func builderPool(bdb *badger.DB) *z.AllocatorPool {
	f := reflect.ValueOf(bdb).Elem().FieldByName("allocPool")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*z.AllocatorPool]() {
		return nil
	}
	return *(**z.AllocatorPool)(unsafe.Pointer(f.UnsafeAddr()))
}

// drainBuilders takes every allocator out of pool and releases it, through
// the pool's own (channel-based) Get, so it is safe beside Badger's
// builders. It returns how many it released and their bytes. pool must
// not have been released (Badger's Close does that: call this before).
func drainBuilders(pool *z.AllocatorPool) (n int, bytes int64) {
	// The pool holds at most 8; a Get on an empty pool makes a new
	// allocator of the minimum size (512 bytes), which ends the loop.
	for range 16 {
		a := pool.Get(0, "sketchd-drain")
		size := int64(a.Allocated())
		a.Release()
		if size <= 512 {
			break
		}
		n++
		bytes += size
	}
	return n, bytes
}
