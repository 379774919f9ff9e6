package store

import (
	"encoding/binary"
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
	if err := db.SetEmitCursor(ctx, info.ID, "out.b", EmitCursor{ClosedTo: -minute, FinalTo: -2 * minute, LateSeen: 7, LateKnown: true}); err != nil {
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
	if got, _, _ := db.EmitCursor(ctx, info.ID, "out.b"); got != (EmitCursor{ClosedTo: -minute, FinalTo: -2 * minute, LateSeen: 7, LateKnown: true}) {
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

// TestEmitCursorVersion1: a cursor stored before the late count was (value
// version 1) reads with LateKnown false; a corrupt late-known byte is
// corrupt data.
func TestEmitCursorVersion1(t *testing.T) {
	k := emitCursorKey(1, "out.a")
	v1 := []byte{emitCursorV1}
	v1 = binary.BigEndian.AppendUint64(v1, flip(5*minute))
	v1 = binary.BigEndian.AppendUint64(v1, flip(3*minute))
	v1 = appendCRC(v1)
	got, err := decodeEmitCursor(k, v1)
	if want := (EmitCursor{ClosedTo: 5 * minute, FinalTo: 3 * minute}); err != nil || got != want {
		t.Fatalf("version 1: %+v %v, want %+v", got, err, want)
	}
	v2 := encodeEmitCursor(EmitCursor{ClosedTo: 5 * minute, FinalTo: 3 * minute, LateSeen: 9, LateKnown: true})
	v2[17] = 2
	v2 = appendCRC(v2[:len(v2)-crcLen])
	if _, err := decodeEmitCursor(k, v2); !errors.Is(err, ErrCorrupt) {
		t.Errorf("late-known byte 2: %v, want ErrCorrupt", err)
	}
}
