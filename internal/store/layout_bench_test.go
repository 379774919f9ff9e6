package store

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkCompactionLayout measures what Badger's compactions rewrite for
// a live stream's flushes under four key layouts, writing Badger directly
// (no Commit, no sync): 180 keys with 600 minutes of 1 KiB panes already
// stored, then flushes that rewrite each key's newest pane (6 KiB, a new
// minute every 60 flushes), with the store's DefaultOptions. Partitions of
// a day (the default) or an hour; panes alone (the panes family of format
// 2, families.go), or with what a Commit of format 1 wrote beside them in
// the same transaction ("hot": a key-index entry per pane and the
// checkpoint, whose keys sort before the panes'). It
// reports the compactions' bytes per flush (Badger's expvar; a flush is
// 1.05 MiB). A level-0 table spans every key its memtable held, so it
// overlaps every table below in that range: both the day-wide partition
// and the hot records widen it.
//
//	go test ./internal/store -run '^$' -bench CompactionLayout -benchtime 300x
//
// At dc5f665 on the 2-core machine (three runs): day with hot records
// (format 1) 1.01-1.03 MiB compacted per flush, day alone (format 2)
// 0.61-0.62, hour with hot records 0.56-0.61, hour alone 0.29: hourly
// partitions help only with the checkpoint and the key index kept out of
// the panes' key range, which format 2's second Badger does.
func BenchmarkCompactionLayout(b *testing.B) {
	for _, v := range []struct {
		name  string
		width int64
		hot   bool
	}{{"day,hot", day, true}, {"day", day, false}, {"hour,hot", hour, true}, {"hour", hour, false}} {
		b.Run(v.name, func(b *testing.B) {
			db := openTest(b, b.TempDir(), quietOptions())
			const keys, history = 180, 600
			sp := space{pane: sidPrefix(prefixPane, 7), index: sidPrefix(prefixIndex, 7), width: v.width}
			write := func(m int64, size, flush int) {
				err := db.panes.Update(func(txn *badger.Txn) error {
					start := m * minute
					part := partitionOf(start, v.width)
					for k := range keys {
						key := fmt.Sprintf("key-%05d", k)
						if err := txn.Set(sp.appendPaneKey(nil, part, key, start), blob(uint64(flush*keys+k), size)); err != nil {
							return err
						}
						if v.hot {
							if err := txn.Set(sp.indexKey(part, key), encodeIndex(start, start)); err != nil {
								return err
							}
						}
					}
					if v.hot {
						return txn.Set(checkpointKey(7), encodeU32(idVersion, uint32(flush+1)))
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			for m := range history {
				write(int64(m), 1024, m)
			}
			settleCompactions(b)
			c0 := compactionWritten()
			flushes := 0
			for b.Loop() {
				flushes++
				write(int64(history+flushes/60), 6<<10, history+flushes)
			}
			b.ReportMetric(float64(compactionWritten()-c0)/(1<<20)/float64(flushes), "compacted-MiB/flush")
		})
	}
}

// compactionWritten is what Badger's compactions have written in this
// process, over every level.
func compactionWritten() int64 {
	written, _ := compactionCounts()
	var n int64
	for _, b := range written {
		n += b
	}
	return n
}
