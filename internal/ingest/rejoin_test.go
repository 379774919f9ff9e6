package ingest

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// TestClusterSurvivesClosedConnection: two cluster-mode instances on a
// 3-node NATS cluster share a stream of 4 partitions; a single-node
// reference reads the same events. The server closes instance A's
// connection for good (a 4,100-byte subject exceeds its control-line
// limit) right after a batch was published, while A ingests it. A
// redials and joins the cluster again on the new connection: discovery
// finds it again, its registry watch sees a stream created on B after the
// close, it owns partitions again, and events published after the close
// are ingested. Every instance stores every event exactly once and
// answers as the reference does (0 lost, 0 doubled).
func TestClusterSurvivesClosedConnection(t *testing.T) {
	const seed, n = 29, 3000
	ctx := context.Background()
	rp := startRejoinPair(t, seed, n, "rd")
	a, b, nodes, ref, pub, publish := rp.a, rp.b, rp.nodes, rp.ref, rp.pub, rp.publish

	closeForGood(t, a.nc)
	closed := time.Now()
	waitFor(t, 60*time.Second, "A on a new connection, ready", func() (bool, string) {
		err := a.m.Ready(ctx)
		return a.conn.Redials() == 1 && err == nil, fmt.Sprintf("redials %d, ready: %v", a.conn.Redials(), err)
	})
	t.Logf("A ready on a new connection %s after the close", time.Since(closed).Round(time.Millisecond))
	if got := mustMetric(t, a.m, "sketchd_nats_redials_total"); got != 1 {
		t.Errorf("sketchd_nats_redials_total %v, want 1", got)
	}
	waitFor(t, 30*time.Second, "A announced again", func() (bool, string) {
		ms, err := cluster.Discover(ctx, pub, a.opts.Name, 150*time.Millisecond)
		ids := make([]string, len(ms))
		for i, mb := range ms {
			ids[i] = mb.Instance
		}
		return slices.Contains(ids, a.m.instance), fmt.Sprintf("members %v %v, want %s", ids, err, a.m.instance)
	})
	spec2 := partSpec("pv2", "rd2", `,"jetstream_stream":"PV2_RD","partitions":2,"partition_by":[1]`)
	if r := b.fixture().do(t, http.MethodPost, "/v1/streams", spec2); r.status != http.StatusCreated {
		t.Fatalf("create pv2 on B: %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "A runs pv2, created on B after the close", func() (bool, string) {
		st, err := a.m.Get(ctx, "pv2")
		return err == nil && a.m.clusterStreamOf("pv2") != nil && st.State == "running", fmt.Sprint(st.State, err)
	})
	publish(3*n/4, n)
	waitOwnedByBoth(t, nodes, "pv", 4)

	checkLikeReference(t, ref, []*partFixture{a.fixture(), b.fixture()}, 4, n)
}

// checkLikeReference waits until the reference and every cluster
// instance (ready) stored all n events of stream "pv" (parts
// partitions), then checks that each instance answers as the reference
// does, covers every partition, and holds the reference's panes: every
// event stored exactly once.
func checkLikeReference(t *testing.T, ref *partFixture, instances []*partFixture, parts, n int) {
	t.Helper()
	ctx := context.Background()
	all := append([]*partFixture{ref}, instances...)
	for i, f := range all {
		waitFor(t, 60*time.Second, fmt.Sprintf("instance %d stored everything", i), func() (bool, string) {
			got, s := storedEvents(t, f.m, f.db, "pv")
			return got == uint64(n) && (i == 0 || f.m.Ready(ctx) == nil), s
		})
	}
	rng := fmt.Sprintf("from=%d&to=%d", base.Add(-time.Hour).Unix(), base.Add(time.Hour).Unix())
	for _, q := range []string{
		"users?group_by=country&step=1m&" + rng,
		"urls?group_by=country&item=/p/1&item=/p/7&item=/p/49&" + rng,
		"sample?step=1m&" + rng,
	} {
		want := comparable(ref.answer(t, "pv", q))
		for i, f := range instances {
			if got := comparable(f.answer(t, "pv", q)); !reflect.DeepEqual(want, got) {
				t.Errorf("instance %d %s:\nreference %v\ncluster   %v", i, q, want, got)
			}
		}
	}
	for _, f := range instances {
		checkCoverage(t, f.answer(t, "pv", "users?"+rng), parts, n)
		comparePanes(t, ref, f)
	}
}

// waitOwnedByBoth waits until both instances own some of the stream's
// partitions, and together all of them.
func waitOwnedByBoth(t *testing.T, nodes []*clusterNode, name string, parts int) {
	t.Helper()
	waitFor(t, 90*time.Second, "both instances owning partitions of "+name, func() (bool, string) {
		var owned []int
		for _, nd := range nodes {
			n := 0
			if cs := nd.m.clusterStreamOf(name); cs != nil {
				cs.mu.Lock()
				n = len(cs.owned)
				cs.mu.Unlock()
			}
			owned = append(owned, n)
		}
		return owned[0] > 0 && owned[1] > 0 && owned[0]+owned[1] == parts, fmt.Sprint(owned)
	})
}

// closeForGood makes the server close nc: a subject of 4,100 bytes exceeds
// its control-line limit, a protocol error nats.go does not reconnect from.
func closeForGood(t *testing.T, nc *nats.Conn) {
	t.Helper()
	closed := nc.StatusChanged(nats.CLOSED)
	_ = nc.Publish(strings.Repeat("a", 4100), []byte("x"))
	_ = nc.Flush()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not close the connection")
	}
	t.Logf("closed by the server: %v", nc.LastError())
}

// TestClusterRejoinsAlone: the probe's case, repeated. One cluster-mode
// instance alone owns both partitions of a stream; the server closes its
// connection three times, each after a batch was published. Each time it
// joins again on the new connection (a mode made by a rejoin is left and
// joined again too), owns both partitions again, and ingests the next
// batch: every event is stored once.
func TestClusterRejoinsAlone(t *testing.T) {
	const seed, batch, closes = 31, 200, 3
	ctx := context.Background()
	c := clustertest.Start(t, 3, clustertest.Options{})
	a := newRedialNode(t, c, 0)
	spec := partSpec("pv", "al", `,"jetstream_stream":"PV_AL","partitions":2,"partition_by":[1]`)
	if r := a.fixture().do(t, http.MethodPost, "/v1/streams", spec); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	pub := c.Connect(t, 1)
	js, _ := jetstream.New(pub)
	evs := genEvents(seed, batch*(closes+1))
	for round := 0; round <= closes; round++ {
		waitFor(t, 60*time.Second, fmt.Sprintf("round %d: ready, owning both partitions", round), func() (bool, string) {
			cs := a.m.clusterStreamOf("pv")
			err := a.m.Ready(ctx)
			return err == nil && cs != nil && cs.owns(0) && cs.owns(1), fmt.Sprintf("redials %d, ready: %v", a.conn.Redials(), err)
		})
		for _, e := range evs[round*batch : (round+1)*batch] {
			if _, err := js.Publish(ctx, "ev.al."+e.User, e.json()); err != nil {
				t.Fatal(err)
			}
		}
		want := uint64((round + 1) * batch)
		waitFor(t, 60*time.Second, fmt.Sprintf("round %d: %d events stored", round, want), func() (bool, string) {
			got, s := storedEvents(t, a.m, a.db, "pv")
			return got == want, s
		})
		if round < closes {
			closeForGood(t, a.conn.Current())
		}
	}
	if got := a.conn.Redials(); got != closes {
		t.Errorf("redials %d, want %d", got, closes)
	}
	// Exactly once: nothing stored twice after the last wait either.
	got, s := storedEvents(t, a.m, a.db, "pv")
	if got != uint64(len(evs)) {
		t.Errorf("%s, want %d", s, len(evs))
	}
}

// TestRebindTakesOnlyTheCurrentConnection: two rebinds can overlap (the
// next close starts a redial while the last one's listeners run), and the
// older one may reach connMu last: it must not put back a connection that
// was replaced already, else both rejoins see a closed connection and
// wait for a next one that never comes (review14).
func TestRebindTakesOnlyTheCurrentConnection(t *testing.T) {
	ns := runNATS(t)
	older, newer := connect(t, ns.ClientURL()), connect(t, ns.ClientURL())
	conn := &ConnState{}
	conn.redial.cur.Store(newer) // newer replaced older
	m, err := NewManager(older, conn, openStore(t, t.TempDir()), testLogger(t), Options{FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	m.rebind(newer)
	m.rebind(older) // the older rebind, late
	if nc, _ := m.conns(); nc != newer {
		t.Fatalf("the Manager's connection is the replaced one after a late rebind")
	}
}

// rejoinPair is the set-up of the rejoin tests: a 3-node NATS cluster,
// instance A (which redials) and B sharing the 4 partitions of pv, a
// single-node reference with the same stream, and n events of which the
// first half is stored on A and the third quarter published (A ingests
// it when the test closes its connection).
type rejoinPair struct {
	c       *clustertest.Cluster
	a, b    *clusterNode
	nodes   []*clusterNode
	ref     *partFixture
	pub     *nats.Conn
	publish func(from, to int) // events [from, to), waiting for JetStream's acks
}

func startRejoinPair(t *testing.T, seed uint64, n int, tag string) *rejoinPair {
	t.Helper()
	t.Logf("seed %d, %d events", seed, n)
	c := clustertest.Start(t, 3, clustertest.Options{})
	a, b := newRedialNode(t, c, 0), newClusterNode(t, c, 1)
	rp := &rejoinPair{c: c, a: a, b: b, nodes: []*clusterNode{a, b}}
	spec := partSpec("pv", tag, fmt.Sprintf(`,"jetstream_stream":"PV_%s","partitions":4,"partition_by":[1]`, strings.ToUpper(tag)))
	if r := a.fixture().do(t, http.MethodPost, "/v1/streams", spec); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	waitOwnedByBoth(t, rp.nodes, "pv", 4)
	rp.ref = newPartFixture(t, c.Servers[0].ClientURL())
	if r := rp.ref.do(t, http.MethodPost, "/v1/streams", spec); r.status != http.StatusCreated {
		t.Fatalf("reference create: %d %s", r.status, r.body)
	}
	rp.pub = c.Connect(t, 2)
	js, _ := jetstream.New(rp.pub)
	evs := genEvents(seed, n)
	rp.publish = func(from, to int) { t.Helper(); publishAcked(t, js, "ev."+tag+".", evs[from:to]) }
	rp.publish(0, n/2)
	waitFor(t, 60*time.Second, "the first half stored on A", func() (bool, string) {
		got, s := storedEvents(t, a.m, a.db, "pv")
		return got == uint64(n/2), s
	})
	rp.publish(n/2, 3*n/4) // A is ingesting these when its connection closes
	return rp
}
