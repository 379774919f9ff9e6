package store

import (
	"context"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DropBefore drops the stream's whole partitions that end at or before
// cutoff (unix ns): their panes and their key index, with DropPrefix, which
// frees the disk space promptly. A partition that cutoff falls inside is
// kept whole. Errors are as for Commit.
func (db *DB) DropBefore(ctx context.Context, streamID uint32, cutoff int64) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := db.paneWidth(streamID)
	if err != nil {
		return err
	}
	sp := baseSpace(streamID, 0)
	_, err = db.dropPartitions([]spaceCut{{sp, floorDiv(cutoff, w)}})
	return err
}

// spaceCut is a space and the first of its partitions to keep.
type spaceCut struct {
	sp   space
	keep int64
}

// dropPartitions drops, in each space, the partitions below its cut, in
// one DropPrefix call per family. It returns the number of partitions
// dropped.
func (db *DB) dropPartitions(cuts []spaceCut) (int, error) {
	var prefixes [][]byte
	seen := map[string]bool{}
	for _, c := range cuts {
		for _, head := range [][]byte{c.sp.pane, c.sp.index} {
			fams := []*badger.DB{db.family(head[0])}
			if head[0] == prefixPane {
				fams = append(fams, db.open) // panes evicted before final
			}
			for _, f := range fams {
				err := f.View(func(txn *badger.Txn) error {
					for _, p := range partitionsBelow(txn, head, c.keep) {
						if !seen[string(p)] {
							seen[string(p)] = true
							prefixes = append(prefixes, p)
						}
					}
					return nil
				})
				if err != nil {
					return 0, db.writeFailed("drop partitions", err)
				}
			}
		}
	}
	if len(prefixes) == 0 {
		return 0, nil
	}
	err := db.dropPrefixes(prefixes...)
	if err != nil {
		return 0, db.writeFailed("drop partitions", err)
	}
	db.writeOK()
	db.met.droppedParts.Add(float64(len(prefixes)))
	return len(prefixes), nil
}

// partitionsBelow lists the prefixes head|part of the stored partitions
// with part < pc, with one seek per partition (head: a space's pane or
// key-index head).
func partitionsBelow(txn *badger.Txn, head []byte, pc int64) [][]byte {
	opt := badger.DefaultIteratorOptions
	opt.PrefetchValues = false
	opt.Prefix = head
	it := txn.NewIterator(opt)
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid(); {
		p, ok := keyPartition(it.Item().Key(), len(head))
		if !ok || p >= pc {
			break
		}
		out = append(out, headPart(head, p))
		it.Seek(headPart(head, p+1))
	}
	return out
}

// runRetention applies every stream's Retention once (the background loop).
func (db *DB) runRetention(ctx context.Context) {
	if db.enter() != nil {
		return
	}
	defer db.leave()
	if ctx.Err() != nil {
		return
	}
	now := db.opts.Now().UnixNano()
	var below []spaceCut
	db.regMu.RLock()
	for id, info := range db.byID {
		below = append(below, retentionCuts(id, &info.Spec, info.PartitionWidth, now)...)
	}
	db.regMu.RUnlock()
	if len(below) == 0 {
		return
	}
	began := time.Now()
	n, err := db.dropPartitions(below)
	if err != nil {
		db.log.Error("retention failed", "err", err)
		return
	}
	if n > 0 {
		db.log.Info("retention dropped partitions", "prefixes", n, "took", time.Since(began))
	}
}
