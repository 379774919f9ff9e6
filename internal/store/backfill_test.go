package store

import (
	"context"
	"errors"
	"fmt"
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

// TestBackfillPanesTooLarge: a step whose panes do not fit one transaction
// writes nothing (neither panes nor progress) and says how many of its
// first panes fit; a step of those panes is then stored.
func TestBackfillPanesTooLarge(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "bf", time.Minute).ID
	const n, size = 20, 100 << 10 // 2 MB of panes; a transaction holds 1.2 MB
	var at []PaneAt
	for i := range n {
		k := fmt.Sprintf("k%02d", i)
		commit(t, db, sid, uint64(i+1), pane(k, 0, 1, blob(uint64(i), size)))
		at = append(at, PaneAt{Key: k, Start: 0})
	}
	before := sketchd.BackfillStatus{Aggregates: []string{"n"}, From: 1, To: 90, State: "running"}
	if err := db.SetBackfill(ctx, sid, before); err != nil {
		t.Fatal(err)
	}
	edit := func(p *sketchd.PaneRecord) error {
		p.Sketches = append(p.Sketches, []byte("added"))
		return nil
	}
	next := before
	next.Done = 40

	err := db.BackfillPanes(ctx, sid, at, edit, next)
	var big *StepTooLargeError
	if !errors.As(err, &big) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("BackfillPanes of %d panes of %d bytes: %v; want a StepTooLargeError", n, size, err)
	}
	if big.Panes != n || big.Fit < 1 || big.Fit >= n {
		t.Fatalf("%+v: want %d panes, of which between 1 and %d fit", big, n, n-1)
	}
	if got, ok, err := db.Backfill(ctx, sid); err != nil || !ok || !reflect.DeepEqual(got, before) {
		t.Errorf("progress after the refused step: %+v ok %v, %v; want %+v", got, ok, err, before)
	}
	for _, pa := range at {
		if p, _, err := db.Pane(ctx, sid, pa.Key, 0); err != nil || len(p.Sketches) != 1 {
			t.Fatalf("pane %s after the refused step: %d sketches, %v; want it unchanged", pa.Key, len(p.Sketches), err)
		}
	}

	if err := db.BackfillPanes(ctx, sid, at[:big.Fit], edit, next); err != nil {
		t.Fatalf("BackfillPanes of the %d panes that fit: %v", big.Fit, err)
	}
	if got, ok, err := db.Backfill(ctx, sid); err != nil || !ok || !reflect.DeepEqual(got, next) {
		t.Errorf("progress: %+v ok %v, %v; want %+v", got, ok, err, next)
	}
	for i, pa := range at {
		want := 1 // the panes after the step's: unchanged
		if i < big.Fit {
			want = 2
		}
		p, _, err := db.Pane(ctx, sid, pa.Key, 0)
		if err != nil || len(p.Sketches) != want {
			t.Errorf("pane %s: %d sketches, %v; want %d", pa.Key, len(p.Sketches), err, want)
		}
	}
}
