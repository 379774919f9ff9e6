package store

import (
	"errors"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestEmitCursor: a cursor survives a reopen, is per subject, and goes
// with its stream.
func TestEmitCursor(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	info := createTest(t, db, "pv", time.Minute)
	ctx := t.Context()
	if _, ok, err := db.EmitCursor(ctx, info.ID, "out.a"); err != nil || ok {
		t.Fatalf("fresh cursor: ok=%v err=%v", ok, err)
	}
	want := EmitCursor{ClosedTo: 5 * minute, FinalTo: sketchd.NoTime}
	if err := db.SetEmitCursor(ctx, info.ID, "out.a", want); err != nil {
		t.Fatal(err)
	}
	if err := db.SetEmitCursor(ctx, info.ID, "out.b", EmitCursor{-minute, -2 * minute}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	got, ok, err := db.EmitCursor(ctx, info.ID, "out.a")
	if err != nil || !ok || got != want {
		t.Fatalf("after reopen: %+v ok=%v err=%v, want %+v", got, ok, err, want)
	}
	if got, _, _ := db.EmitCursor(ctx, info.ID, "out.b"); got != (EmitCursor{-minute, -2 * minute}) {
		t.Fatalf("out.b: %+v", got)
	}
	if err := db.DeleteStream(ctx, "pv"); err != nil {
		t.Fatal(err)
	}
	info2 := createTest(t, db, "pv", time.Minute)
	if _, ok, err := db.EmitCursor(ctx, info2.ID, "out.a"); err != nil || ok {
		t.Fatalf("cursor of a new stream of the same name: ok=%v err=%v", ok, err)
	}
	if _, _, err := db.EmitCursor(ctx, info.ID, "out.a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted stream: %v, want ErrNotFound", err)
	}
}
