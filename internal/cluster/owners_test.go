package cluster

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// TestMirrorOwners: a mirror made before any claim on a 3-node changelog
// follows the owner of each partition through the claim records it reads
// (the records of a partition it holds too), counts the claims that change
// an owner (first claims included; a commit under the same owner is none),
// and says what it may still have to apply per partition (0 for a held
// one). A mirror made afterwards learns the owners from each partition's
// last record and counts no change it did not see.
func TestMirrorOwners(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	nc := f.c.Connect(t, 2)
	db, sids := openStore(t, 2)
	reg := prometheus.NewPedanticRegistry()
	mirror, err := NewMirror(ctx, jetStream(t, nc), f.cl, sids, db, nil, WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()
	catchUp := func(m *Mirror) {
		t.Helper()
		if err := m.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantOwners := func(m *Mirror, when string, owners []string, epochs []uint64, changes uint64) {
		t.Helper()
		for p := range owners {
			if o, e := m.Owner(p); o != owners[p] || e != epochs[p] {
				t.Errorf("%s: partition %d owner %q epoch %d, want %q epoch %d", when, p, o, e, owners[p], epochs[p])
			}
			if n := m.Pending(p); n != 0 {
				t.Errorf("%s: partition %d pending %d after catching up, want 0", when, p, n)
			}
		}
		if n := m.OwnerChanges(); n != changes {
			t.Errorf("%s: %d owner changes, want %d", when, n, changes)
		}
	}
	catchUp(mirror) // an empty changelog: no partition has a record
	wantOwners(mirror, "empty", []string{"", ""}, []uint64{0, 0}, 0)

	a0, a1 := f.writer(t, 0, 0, "a"), f.writer(t, 0, 1, "a")
	claim(t, a0)
	claim(t, a1)
	var m1 model
	gen := &flushGen{rng: rand.New(rand.NewPCG(1, 16))}
	fl := gen.next(&m1, 20, 100)
	if _, err := a1.Commit(ctx, fl); err != nil {
		t.Fatal(err)
	}
	catchUp(mirror)
	wantOwners(mirror, "after a's claims", []string{"a", "a"}, []uint64{1, 1}, 2)

	// a1's claim record was compacted by its commit's before the mirror
	// read it: two records applied, and p1's first claim seen in the
	// commit's record.
	mirror.Hold(0) // as its owner would: the claim record is still read
	b0 := f.writer(t, 1, 0, "b")
	claim(t, b0)
	catchUp(mirror)
	wantOwners(mirror, "after b's claim of 0", []string{"b", "a"}, []uint64{2, 1}, 3)
	checkMetrics(t, reg, "after b's claim", map[string]float64{"applied_sequence": float64(f.lastSeq(t)), "pending": 0,
		"panes_applied_total": 20, "records_applied_total": 2, "skipped_corrupt_total": 0, "restored": 1, ownerChanges: 3})

	fresh, sids2 := openStore(t, 2)
	late, err := NewMirror(ctx, jetStream(t, nc), f.cl, sids2, fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := late.Pending(1); n != f.lastSeq(t) {
		t.Errorf("a new mirror: partition 1 pending %d, want the changelog's last sequence %d", n, f.lastSeq(t))
	}
	catchUp(late)
	wantOwners(late, "a mirror made after the claims", []string{"b", "a"}, []uint64{2, 1}, 0)
}
