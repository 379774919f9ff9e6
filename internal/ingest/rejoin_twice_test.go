package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestClusterSecondCloseDuringRejoin: the server closes instance A's
// connection for good a second time while A's join after the first close
// is under way. Two cluster-mode instances on a 3-node NATS cluster share
// a stream of 4 partitions, with a single-node reference, as in
// TestClusterSurvivesClosedConnection. The join after the first close is
// held where a registry watch whose initial values never come holds it
// (Manager.holdSync, until the mode's context ends), and the second
// connection is closed there. The held join must give up at once, so
// that A joins on the third connection: ready and owning partitions
// within 20 s of the second close. A join that waited out its 1-minute
// budget on the dead connection could not be ready before 60 s; 20 s is
// a third of that, and some 50 times the 0.2-0.4 s that the rejoin and
// the claim after a discovery round took here (14 runs, two of them
// under -race): room for a loaded 2-core machine. Then the next mode
// follows the registry only after the held one stopped (no two joins at
// once), and every acknowledged event is stored exactly once on both
// instances, their answers and panes equal to the reference's.
func TestClusterSecondCloseDuringRejoin(t *testing.T) {
	const seed, n, bound = 37, 3000, 20 * time.Second
	ctx := context.Background()
	rp := startRejoinPair(t, seed, n, "tw")
	a, b, nodes, ref, publish := rp.a, rp.b, rp.nodes, rp.ref, rp.publish

	hold := holdNextSync(a.m)
	first := a.conn.Current()
	closeForGood(t, first)
	firstClosed := time.Now()
	held := hold.wait(t, hold.entered, 60*time.Second, "the join after the first close to follow the registry")
	second := a.conn.Current()
	if second == first || a.conn.Redials() != 1 {
		t.Fatalf("the held join is not on the replacing connection: redials %d", a.conn.Redials())
	}
	t.Logf("the join on the second connection held %s after the first close", held.Sub(firstClosed).Round(time.Millisecond))
	closeForGood(t, second)
	closed := time.Now()
	waitFor(t, bound, "A ready on a third connection, owning partitions", func() (bool, string) {
		err := a.m.Ready(ctx)
		owned := 0
		if cs := a.m.clusterStreamOf("pv"); cs != nil {
			cs.mu.Lock()
			owned = len(cs.owned)
			cs.mu.Unlock()
		}
		return a.conn.Redials() == 2 && err == nil && owned > 0,
			fmt.Sprintf("redials %d, ready: %v, %d partitions owned", a.conn.Redials(), err, owned)
	})
	t.Logf("A ready on a third connection, owning partitions, %s after the second close", time.Since(closed).Round(time.Millisecond))
	gaveUp := hold.wait(t, hold.released, 0, "the held join to have given up")
	t.Logf("the held join gave up %s after the second close was seen (negative: before)", gaveUp.Sub(closed).Round(100*time.Microsecond))
	if next := hold.wait(t, hold.next, 0, "the next mode to have followed the registry"); next.Before(gaveUp) {
		t.Errorf("the next mode followed the registry %s before the held join gave up", gaveUp.Sub(next))
	}
	if got := mustMetric(t, a.m, "sketchd_nats_redials_total"); got != 2 {
		t.Errorf("sketchd_nats_redials_total %v, want 2", got)
	}

	publish(3*n/4, n)
	waitOwnedByBoth(t, nodes, "pv", 4)
	checkLikeReference(t, ref, []*partFixture{a.fixture(), b.fixture()}, 4, n)
}

// syncHold holds the first cluster mode of a Manager that follows the
// registry after holdNextSync until that mode's context ends, and records
// when it began and ended and when the next mode began to follow.
type syncHold struct {
	calls                   atomic.Int32
	entered, released, next chan time.Time
}

// holdNextSync arms m.holdSync: see syncHold.
func holdNextSync(m *Manager) *syncHold {
	h := &syncHold{entered: make(chan time.Time, 1), released: make(chan time.Time, 1), next: make(chan time.Time, 1)}
	f := func(ctx context.Context) {
		switch h.calls.Add(1) {
		case 1:
			h.entered <- time.Now()
			<-ctx.Done()
			h.released <- time.Now()
		case 2:
			h.next <- time.Now()
		}
	}
	m.holdSync.Store(&f)
	return h
}

// wait returns the time ch records, failing if it records none within d.
func (h *syncHold) wait(t *testing.T, ch <-chan time.Time, d time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		return at
	default:
	}
	select {
	case at := <-ch:
		return at
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
		return time.Time{}
	}
}

// TestWhileOpen: the context a join runs in ends, with errConnClosed as
// its cause, when the server closes its connection for good, or at once
// when the connection was closed already; its parent's end ends it too.
func TestWhileOpen(t *testing.T) {
	ns := runNATS(t)
	connect := func(t *testing.T) *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(ns.ClientURL(), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	t.Run("closed by the server", func(t *testing.T) {
		nc := connect(t)
		ctx, cancel := whileOpen(context.Background(), nc)
		defer cancel()
		if ctx.Err() != nil {
			t.Fatalf("ended while open: %v", context.Cause(ctx))
		}
		closeForGood(t, nc)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("not ended 10 s after the close")
		}
		if got := context.Cause(ctx); !errors.Is(got, errConnClosed) {
			t.Errorf("cause %v, want %v", got, errConnClosed)
		}
	})
	t.Run("closed before", func(t *testing.T) {
		nc := connect(t)
		nc.Close()
		ctx, cancel := whileOpen(context.Background(), nc)
		defer cancel()
		if got := context.Cause(ctx); !errors.Is(got, errConnClosed) {
			t.Errorf("cause %v, want %v", got, errConnClosed)
		}
	})
	t.Run("parent ended", func(t *testing.T) {
		nc := connect(t)
		parent, stop := context.WithCancel(context.Background())
		ctx, cancel := whileOpen(parent, nc)
		defer cancel()
		stop()
		<-ctx.Done()
		if got := context.Cause(ctx); !errors.Is(got, context.Canceled) {
			t.Errorf("cause %v, want %v", got, context.Canceled)
		}
	})
}
