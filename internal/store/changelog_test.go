package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestChangelogSeq: CommitChangelog keeps the changelog sequence with the
// checkpoint, across a reopen; Commit leaves it; DeleteStream drops it.
func TestChangelogSeq(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	info := createTest(t, db, "cl", time.Minute)
	if _, ok, err := db.ChangelogSeq(ctx, info.ID); ok || err != nil {
		t.Fatalf("fresh stream: ok %v, %v", ok, err)
	}
	f := sketchd.Flush{Panes: []sketchd.PaneRecord{pane("k", 0, 7, blob(1, 100))}, Checkpoint: sketchd.Checkpoint{Position: 7}}
	if err := db.CommitChangelog(ctx, info.ID, f, 42); err != nil {
		t.Fatal(err)
	}
	commit(t, db, info.ID, 9) // a plain commit does not touch it
	// ApplyPanes writes a pane and leaves the checkpoint and sequence.
	if err := db.ApplyPanes(ctx, info.ID, []sketchd.PaneRecord{pane("k2", 0, 11, blob(2, 50))}); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := db.Pane(ctx, info.ID, "k2", 0); err != nil || !ok || p.Applied != 11 {
		t.Fatalf("applied pane: %+v %v %v", p, ok, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	seq, ok, err := db.ChangelogSeq(ctx, info.ID)
	if err != nil || !ok || seq != 42 {
		t.Fatalf("after reopen: %d %v %v, want 42", seq, ok, err)
	}
	if cp, _, _ := db.Checkpoint(ctx, info.ID); cp.Position != 9 {
		t.Fatalf("checkpoint %d, want 9", cp.Position)
	}
	if err := db.DeleteStream(ctx, "cl"); err != nil {
		t.Fatal(err)
	}
	again := createTest(t, db, "cl", time.Minute)
	if _, ok, err := db.ChangelogSeq(ctx, again.ID); ok || err != nil {
		t.Fatalf("re-created stream: ok %v, %v", ok, err)
	}
	if _, _, err := db.ChangelogSeq(ctx, info.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted stream: %v, want ErrNotFound", err)
	}
}
