package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPartitionIDs: a partitioned stream takes the IDs after its own, one
// per partition, kept across a reopen; each partition commits and reads
// under its ID with the stream's spec; the next stream gets the next free
// ID; a delete drops every partition's panes and checkpoint.
func TestPartitionIDs(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	ctx := context.Background()
	spec := testSpec("parts", time.Minute)
	spec.Subject = "events.parts.*"
	spec.Partitions = 3
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{info.ID + 1, info.ID + 2, info.ID + 3}; !slices.Equal(info.Partitions, want) {
		t.Fatalf("partitions %v, want %v", info.Partitions, want)
	}
	for i, id := range info.Partitions {
		commit(t, db, id, uint64(10+i), pane("k", 0, uint64(1+i), blob(uint64(i), 8)))
	}
	next := createTest(t, db, "after", time.Minute)
	if next.ID != info.ID+4 {
		t.Errorf("next stream ID %d, want %d", next.ID, info.ID+4)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	back, err := db.Stream(ctx, "parts")
	if err != nil || !slices.Equal(back.Partitions, info.Partitions) {
		t.Fatalf("after reopen: %v, partitions %v, want %v", err, back.Partitions, info.Partitions)
	}
	all, _ := db.Streams(ctx)
	if len(all) != 2 {
		t.Errorf("%d streams listed, want 2 (partitions are not streams)", len(all))
	}
	for i, id := range info.Partitions {
		p, ok, err := db.Pane(ctx, id, "k", 0)
		if err != nil || !ok || p.Applied != uint64(1+i) {
			t.Errorf("partition %d: pane %+v ok %v err %v", i, p, ok, err)
		}
	}
	if err := db.DeleteStream(ctx, "parts"); err != nil {
		t.Fatal(err)
	}
	for i, id := range info.Partitions {
		if _, ok, _ := db.Checkpoint(ctx, id); ok {
			t.Errorf("partition %d: checkpoint left after delete", i)
		}
		if _, _, err := db.Pane(ctx, id, "k", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("partition %d: read after delete: %v, want ErrNotFound", i, err)
		}
	}
}
