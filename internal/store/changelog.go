package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// changelogVersion frames the applied changelog sequence (keys.go,
// prefixChangelog): a u64 frame.
const changelogVersion = 1

// CommitChangelog is Commit for a flush that came with (or was written
// to) the cluster changelog: after the checkpoint it records seq, the
// changelog sequence of the flush's checkpoint record, in the same durable
// commit. A mirror resumes after the lowest of these (ChangelogSeq), and
// skips records at or below a partition's own. Errors as Commit's.
func (db *DB) CommitChangelog(ctx context.Context, streamID uint32, f sketchd.Flush, seq uint64) error {
	return db.commit(ctx, streamID, f, commitOpts{clSeq: &seq})
}

// ApplyPanes writes panes without a checkpoint, and without a Sync: a
// mirror restoring a partition whose checkpoint record comes later in the
// changelog writes its panes in bounded chunks, and the record's
// CommitChangelog syncs them all. A pane ahead of its stream's checkpoint
// is harmless (a replay skips what its Applied contains), and one lost in
// a crash is read again, since the applied sequence did not move. Errors
// as Commit's.
func (db *DB) ApplyPanes(ctx context.Context, streamID uint32, panes []sketchd.PaneRecord) error {
	return db.commit(ctx, streamID, sketchd.Flush{Panes: panes}, commitOpts{panesOnly: true})
}

// ChangelogSeq returns the changelog sequence last committed with
// CommitChangelog for the stream (partition) streamID; ok is false when
// none has been.
func (db *DB) ChangelogSeq(ctx context.Context, streamID uint32) (seq uint64, ok bool, err error) {
	if err := db.enter(); err != nil {
		return 0, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if _, known := db.streamByID(streamID); !known {
		return 0, false, fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	k := changelogKey(streamID)
	err = db.meta.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			seq, err = decodeU64(k, v, changelogVersion)
			ok = err == nil
			return err
		})
	})
	if err != nil {
		return 0, false, db.readFailed("changelog sequence", err)
	}
	return seq, ok, nil
}
