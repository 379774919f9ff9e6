package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRestoringMark: a stream's restoring mark is off by default, set and
// cleared per stream ID, survives a reopen (a restore cut short by a
// crash stays marked), and is gone with the stream; an unknown stream is
// ErrNotFound.
func TestRestoringMark(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	a, b := createTest(t, db, "ra", time.Minute), createTest(t, db, "rb", time.Minute)
	check := func(when string, db *DB, wantA, wantB bool) {
		t.Helper()
		for _, c := range []struct {
			id   uint32
			want bool
		}{{a.ID, wantA}, {b.ID, wantB}} {
			if got, err := db.Restoring(ctx, c.id); err != nil || got != c.want {
				t.Errorf("%s: stream %d restoring %v (%v), want %v", when, c.id, got, err, c.want)
			}
		}
	}
	check("fresh", db, false, false)
	if err := db.SetRestoring(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	check("a set", db, true, false)
	commit(t, db, b.ID, 3) // a synced commit makes the mark durable
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	check("reopened", db, true, false)
	if err := db.SetRestoring(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRestoring(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	check("a cleared, b set", db, false, true)
	if err := db.DeleteStream(ctx, "rb"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRestoring(ctx, b.ID, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted stream: %v, want ErrNotFound", err)
	}
	c := createTest(t, db, "rb", time.Minute)
	if got, err := db.Restoring(ctx, c.ID); err != nil || got {
		t.Errorf("re-created stream: restoring %v (%v), want false", got, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	if got, err := db.Restoring(ctx, b.ID); err != nil || got {
		t.Errorf("deleted stream's mark after reopen: %v (%v), want gone", got, err)
	}
}
