package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestBackfillRecord: the backfill record reads back as written, also
// after a reopen (the in-memory copy is only a copy), and is gone with the
// stream; a stream without one has none.
func TestBackfillRecord(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := Open(dir, testLogger(t), nil, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	sid := createTest(t, db, "bf", time.Minute).ID
	if _, ok, err := db.Backfill(ctx, sid); err != nil || ok {
		t.Fatalf("a stream without a backfill: ok %v, %v", ok, err)
	}
	want := sketchd.BackfillStatus{Aggregates: []string{"n"}, From: 1, To: 90, Done: 0, State: "running"}
	for _, step := range []uint64{0, 40, 90} {
		want.Done = step
		if step == 90 {
			want.State = "done"
		}
		if err := db.SetBackfill(ctx, sid, want); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := db.Backfill(ctx, sid); err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("after writing %+v: %+v ok %v, %v", want, got, ok, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	if got, ok, err := db.Backfill(ctx, sid); err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("after a reopen: %+v ok %v, %v; want %+v", got, ok, err, want)
	}
	if err := db.DeleteStream(ctx, "bf"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Backfill(ctx, sid); err != nil || ok {
		t.Errorf("after the stream's delete: ok %v, %v; want none", ok, err)
	}
}
