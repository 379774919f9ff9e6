package cluster

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// TestMirrorPendingPerPartition: on a 3-node changelog, a mirror's
// Pending is per partition once a probe has read the partitions' last
// records: the sequences up to each one's last record that the mirror has
// not processed; 0 for a partition with nothing new although another one
// has (the mirror reads them all in one sequence); 0 for a held one; 0
// for all once caught up.
func TestMirrorPendingPerPartition(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	nc := f.c.Connect(t, 2)
	db, sids := openStore(t, 2)
	mirror, err := NewMirror(ctx, jetStream(t, nc), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	probe := func() {
		t.Helper()
		if err := mirror.ProbeTails(ctx); err != nil {
			t.Fatal(err)
		}
		if mirror.Lagging() {
			t.Error("lagging right after a probe")
		}
	}
	lastRecord := func(p int) uint64 {
		t.Helper()
		m, err := f.stream.GetLastMsgForSubject(ctx, f.cl.CheckpointSubject(p))
		if err != nil {
			t.Fatal(err)
		}
		return m.Sequence
	}
	want := func(when string, w0, w1 uint64) {
		t.Helper()
		if g0, g1 := mirror.Pending(0), mirror.Pending(1); g0 != w0 || g1 != w1 {
			t.Errorf("%s: pending %d and %d, want %d and %d", when, g0, g1, w0, w1)
		}
	}
	if err := mirror.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	writers := []*Writer{f.writer(t, 0, 0, "a"), f.writer(t, 1, 1, "a")}
	models := make([]model, 2)
	gen := &flushGen{rng: rand.New(rand.NewPCG(3, 16))}
	commit := func(p, panes int) {
		t.Helper()
		fl := gen.next(&models[p], panes, 100)
		if _, err := writers[p].Commit(ctx, fl); err != nil {
			t.Fatal(err)
		}
		models[p].apply(fl)
	}
	for p := range writers {
		claim(t, writers[p])
		commit(p, 10+5*p)
	}
	probe()
	want("both written, nothing read", lastRecord(0), lastRecord(1))

	if err := mirror.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	want("caught up", 0, 0)
	at := f.lastSeq(t)
	commit(1, 7) // 7 panes and a record, partition 1 only
	probe()
	want("partition 1 written", 0, lastRecord(1)-at)
	if got := lastRecord(1) - at; got != 8 {
		t.Errorf("partition 1's new batch spans %d sequences, want 8", got)
	}
	mirror.Hold(1)
	want("partition 1 held", 0, 0)
}
