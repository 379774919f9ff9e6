package cluster

import (
	"context"
	"fmt"

	"github.com/sketchd/sketchd"
)

// Committer makes one flush of a stream (partition) durable before its
// source is acked: the one call the ingest committer makes between Flush
// and ack. *store.DB is the single-node one (its Commit); ChangelogCommitter
// is the cluster owner's.
type Committer interface {
	Commit(ctx context.Context, streamID uint32, f sketchd.Flush) error
}

// ChangelogStore is the local store as the changelog's users need it
// (*store.DB): a commit that records the changelog sequence it came with,
// and that sequence.
type ChangelogStore interface {
	CommitChangelog(ctx context.Context, streamID uint32, f sketchd.Flush, seq uint64) error
	ChangelogSeq(ctx context.Context, streamID uint32) (uint64, bool, error)
	ApplyPanes(ctx context.Context, streamID uint32, panes []sketchd.PaneRecord) error
}

// ChangelogCommitter commits an owned partition changelog first, then
// locally (docs/scale-out.md §2.3): the changelog's atomic batches, then
// the store's commit with that checkpoint record's sequence. A fenced
// changelog commit (ErrFenced) writes nothing locally; the caller stops
// owning the partition. A crash between the two leaves the local store one
// commit behind, which the mirror applies on restart.
type ChangelogCommitter struct {
	Writer *Writer
	Local  ChangelogStore
}

// Commit implements Committer.
func (c ChangelogCommitter) Commit(ctx context.Context, streamID uint32, f sketchd.Flush) error {
	seq, err := c.Writer.Commit(ctx, f)
	if err != nil {
		return err
	}
	if err := c.Local.CommitChangelog(ctx, streamID, f, seq); err != nil {
		return fmt.Errorf("cluster: local commit after changelog %d: %w", seq, err)
	}
	return nil
}
