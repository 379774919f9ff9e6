package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// TestChangelogSurvivesNodeLoss: the node leading the changelog stream
// shuts down between commits; the owner, connected to another node,
// retries its commit through the election (a failed commit is retried
// with the same flush, as the ingest committer does) and nothing is lost:
// a mirror on the third node restores every pane and the checkpoint.
func TestChangelogSurvivesNodeLoss(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	leader := f.leader(t)
	owner, reader := (leader+1)%3, (leader+2)%3
	w := f.writer(t, owner, 0, "owner")
	claim(t, w)
	var m model
	g := &flushGen{rng: rand.New(rand.NewPCG(5, 6))}
	commit := func(fl sketchd.Flush) { t.Helper(); commitRetrying(t, ctx, w, &m, fl) }
	commit(g.next(&m, 40, 500))
	f.c.Servers[leader].Shutdown()
	f.c.Servers[leader].WaitForShutdown()
	for range 3 {
		commit(g.next(&m, 40, 500))
	}

	db, sids := openStore(t, 1)
	mirror, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, reader)), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mirror.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	checkPartition(t, db, sids[0], &m)
}

// leader returns the index of the node leading the changelog stream.
func (f *fixture) leader(tb testing.TB) int {
	tb.Helper()
	info, err := f.stream.Info(testContext(tb, 10*time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	for i, ns := range f.c.Servers {
		if ns.Name() == info.Cluster.Leader {
			return i
		}
	}
	tb.Fatalf("changelog leader %q is none of the nodes", info.Cluster.Leader)
	return 0
}

// commitRetrying commits fl through w, retrying a failed commit every
// 200 ms for up to a minute while the cluster recovers (a lost node, a
// leader election), and applies it to m; a fenced writer fails the test.
func commitRetrying(t *testing.T, ctx context.Context, w *Writer, m *model, fl sketchd.Flush) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := w.Commit(ctx, fl)
		if err == nil {
			m.apply(fl)
			return
		}
		if errors.Is(err, ErrFenced) || time.Now().After(deadline) {
			t.Fatalf("commit: %v", err)
		}
		t.Logf("commit failed, retrying: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}
