package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/store"
)

// crashingStore is a real store whose CommitChangelog fails once left
// commits have succeeded: a restore cut short, as by a crash.
type crashingStore struct {
	*store.DB
	left int
}

var errCrash = errors.New("crash")

func (s *crashingStore) CommitChangelog(ctx context.Context, id uint32, f sketchd.Flush, seq uint64) error {
	if s.left == 0 {
		return errCrash
	}
	s.left--
	return s.DB.CommitChangelog(ctx, id, f, seq)
}

// TestMirrorRestoringMark: a fresh store's partitions are marked
// restoring before the first restore applies anything; a restore cut
// short leaves them marked (in the store, for the stream status to read),
// the next mirror on that store completes the restore and clears them
// before it reports Restored; a warm store is not marked again when a
// later pass fails.
func TestMirrorRestoringMark(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	const partitions = 2
	models := make([]model, partitions)
	writers := make([]*Writer, partitions)
	gens := make([]*flushGen, partitions)
	commit := func(p int) {
		t.Helper()
		fl := gens[p].next(&models[p], 12, 64)
		if _, err := writers[p].Commit(ctx, fl); err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
		models[p].apply(fl)
	}
	for p := range partitions {
		writers[p] = f.writer(t, p, p, "owner")
		gens[p] = &flushGen{rng: rand.New(rand.NewPCG(uint64(p), 33))}
		claim(t, writers[p])
		commit(p)
		commit(p)
	}
	db, sids := openStore(t, partitions)
	marks := func(when string, want bool) {
		t.Helper()
		for p, sid := range sids {
			if on, err := db.Restoring(ctx, sid); err != nil || on != want {
				t.Errorf("%s: partition %d restoring %v (%v), want %v", when, p, on, err, want)
			}
		}
	}
	js := jetStream(t, f.c.Connect(t, 2))

	cut, err := NewMirror(ctx, js, f.cl, sids, &crashingStore{DB: db, left: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cut.CatchUp(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("cut-short restore: %v, want the crash", err)
	}
	if cut.Restored() {
		t.Fatal("a cut-short restore reports Restored")
	}
	marks("restore cut short", true)

	full, err := NewMirror(ctx, js, f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	marks("the next mirror, before its pass", true)
	if err := full.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if !full.Restored() {
		t.Fatal("not Restored after CatchUp")
	}
	marks("restored", false)
	for p := range partitions {
		checkPartition(t, db, sids[p], &models[p])
	}

	commit(0)
	warm, err := NewMirror(ctx, js, f.cl, sids, &crashingStore{DB: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.CatchUp(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("warm pass: %v, want the crash", err)
	}
	marks("a warm store's failed pass", false)
}
