package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// clusterNode is one cluster-mode Manager with its own NATS connection
// (to node i of the NATS cluster), Badger and router.
type clusterNode struct {
	c    *clustertest.Cluster
	node int
	db   *store.DB
	opts cluster.Options
	nc   *nats.Conn
	m    *Manager
	srv  *httptest.Server
	prom *prometheus.Registry // the metrics JoinCluster registers
	// conn, when set by newRedialNode, is the state of a connection made
	// by Connect: one the server closes is replaced (redial.go).
	conn *ConnState
}

func testClusterOptions() cluster.Options {
	return cluster.Options{Name: "t", FailoverTimeout: 2 * time.Second,
		DiscoveryInterval: 250 * time.Millisecond, DiscoveryGather: 150 * time.Millisecond}
}

func newClusterNode(t *testing.T, c *clustertest.Cluster, node int) *clusterNode {
	n := &clusterNode{c: c, node: node, db: openStore(t, t.TempDir()), opts: testClusterOptions(), prom: prometheus.NewPedanticRegistry()}
	n.start(t)
	t.Cleanup(func() { n.crash(t) })
	return n
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	var err error
	if n.conn != nil {
		n.nc, n.conn, err = Connect(ConnOptions{URL: n.c.Servers[n.node].ClientURL(), ReconnectWait: 50 * time.Millisecond}, testLogger(t))
	} else {
		n.nc, err = nats.Connect(n.c.Servers[n.node].ClientURL(), nats.MaxReconnects(-1))
	}
	if err != nil {
		t.Fatal(err)
	}
	n.m, err = NewManager(n.nc, n.conn, n.db, testLogger(t), Options{FlushInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.m.JoinCluster(ctx, n.opts, n.prom); err != nil {
		t.Fatal(err)
	}
	if err := n.m.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n.srv = httptest.NewServer(newTestAPI(t, n.m, n.db, 10*time.Second))
}

// crash stops the node as a kill would: its connection closes first, so
// nothing more reaches NATS (no final commit, no ack, no goodbye).
func (n *clusterNode) crash(t *testing.T) {
	t.Helper()
	if n.m == nil {
		return
	}
	if n.conn != nil {
		n.conn.Shutdown()
		n.conn.Current().Close()
	}
	n.nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.m.Stop(ctx)
	n.srv.Close()
	n.m = nil
}

// newRedialNode is newClusterNode with a connection made by Connect.
func newRedialNode(t *testing.T, c *clustertest.Cluster, node int) *clusterNode {
	n := &clusterNode{c: c, node: node, db: openStore(t, t.TempDir()), opts: testClusterOptions(), prom: prometheus.NewPedanticRegistry(), conn: &ConnState{}}
	n.start(t)
	t.Cleanup(func() { n.crash(t) })
	return n
}

func (n *clusterNode) fixture() *partFixture {
	return &partFixture{nc: n.nc, db: n.db, m: n.m, srv: n.srv}
}

// storedEvents is the events in the stored panes of every partition.
func storedEvents(t *testing.T, m *Manager, db *store.DB, name string) (uint64, string) {
	st, err := m.Get(context.Background(), name)
	if err != nil {
		return 0, err.Error()
	}
	var total uint64
	for _, id := range st.Partitions {
		_, got := paneTotals(t, db, id)
		total += got
	}
	return total, fmt.Sprintf("state %s, %d events stored", st.State, total)
}

// createOnCluster creates a stream through f as a client should: a 503
// (the R3 JetStream streams not created within the request's time, as on
// a machine busy with the whole suite under -race: "JetStream:
// unavailable: context deadline exceeded") is retried, and after one, a
// 409 is the earlier attempt's stream.
func createOnCluster(t *testing.T, f *partFixture, spec string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	unavailable := false
	for {
		a := f.do(t, http.MethodPost, "/v1/streams", spec)
		switch {
		case a.status == http.StatusCreated, a.status == http.StatusConflict && unavailable:
			return
		case a.status == http.StatusServiceUnavailable && time.Now().Before(deadline):
			t.Logf("create: %d %s; retrying", a.status, a.body)
			unavailable = true
			time.Sleep(time.Second)
		default:
			t.Fatalf("create: %d %s", a.status, a.body)
		}
	}
}

// TestClusterFailover: three cluster-mode Managers on a 3-node NATS
// cluster (R3) and a single-node reference on the same NATS. A stream of 6
// partitions created on one instance appears on all; seeded events are
// published; one instance crashes mid-ingest (its connection closed: no
// final commit, no ack), the survivors claim its partitions and go on, it
// comes back and restores from the changelog. Every instance's answers
// equal the reference's (exact counts, HLL, count-min and reservoir
// answers equal, t-digest within its bound), and every pane's count-min
// and reservoir bytes and HLL registers equal the reference's: 0 lost, 0 doubled.
func TestClusterFailover(t *testing.T) {
	const seed, n = 161, 9000
	t.Logf("seed %d, %d events", seed, n)
	c := clustertest.Start(t, 3, clustertest.Options{})
	nodes := []*clusterNode{newClusterNode(t, c, 0), newClusterNode(t, c, 1), newClusterNode(t, c, 2)}
	spec := partSpec("pv", "cl", `,"jetstream_stream":"PV_CL","partitions":6,"partition_by":[1]`)
	createOnCluster(t, nodes[0].fixture(), spec)
	if a := nodes[1].fixture().do(t, http.MethodPost, "/v1/streams", spec); a.status != http.StatusConflict {
		t.Fatalf("second create of the name: %d %s, want 409", a.status, a.body)
	}
	for i, nd := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprintf("stream on instance %d", i), func() (bool, string) {
			_, err := nd.m.Get(context.Background(), "pv")
			cs := nd.m.clusterStreamOf("pv")
			return err == nil && cs != nil && nd.m.Ready(context.Background()) == nil, fmt.Sprint(err, cs != nil, nd.m.Ready(context.Background()))
		})
	}
	ref := newPartFixture(t, c.Servers[0].ClientURL())
	if a := ref.do(t, http.MethodPost, "/v1/streams", spec); a.status != http.StatusCreated {
		t.Fatalf("reference create: %d %s", a.status, a.body)
	}

	pub := c.Connect(t, 0)
	js, _ := jetstream.New(pub)
	evs := genEvents(seed, n)
	publish := func(from, to int) { t.Helper(); publishAcked(t, js, "ev.cl.", evs[from:to]) }
	publish(0, n/3)
	waitFor(t, 90*time.Second, "every instance owning some partitions", func() (bool, string) {
		var owned []int
		for _, nd := range nodes {
			cs := nd.m.clusterStreamOf("pv")
			cs.mu.Lock()
			owned = append(owned, len(cs.owned))
			cs.mu.Unlock()
		}
		return owned[0] > 0 && owned[1] > 0 && owned[2] > 0 && owned[0]+owned[1]+owned[2] == 6, fmt.Sprint(owned)
	})
	victim := nodes[2]
	cs := victim.m.clusterStreamOf("pv")
	cs.mu.Lock()
	var lost []int
	for p := range cs.owned {
		lost = append(lost, p)
	}
	cs.mu.Unlock()
	killed := time.Now()
	victim.crash(t)
	t.Logf("instance 2 crashed owning partitions %v", lost)
	publish(n/3, 2*n/3)
	waitFor(t, 90*time.Second, "survivors owning every partition", func() (bool, string) {
		got := 0
		for _, nd := range nodes[:2] {
			cs := nd.m.clusterStreamOf("pv")
			cs.mu.Lock()
			got += len(cs.owned)
			cs.mu.Unlock()
		}
		return got == 6, fmt.Sprintf("%d owned", got)
	})
	t.Logf("failover: the survivors own all 6 partitions %s after the crash", time.Since(killed).Round(time.Millisecond))
	victim.start(t)
	publish(2*n/3, n)

	all := append([]*partFixture{ref}, nodes[0].fixture(), nodes[1].fixture(), victim.fixture())
	for i, f := range all {
		waitFor(t, 60*time.Second, fmt.Sprintf("instance %d committed everything", i), func() (bool, string) {
			got, s := storedEvents(t, f.m, f.db, "pv")
			return got == n && (i == 0 || f.m.Ready(context.Background()) == nil), s
		})
	}
	rng := fmt.Sprintf("from=%d&to=%d", base.Add(-time.Hour).Unix(), base.Add(time.Hour).Unix())
	for _, q := range []string{
		"users?group_by=country&step=1m&" + rng,
		"users?" + rng,
		"urls?group_by=country&item=/p/1&item=/p/7&item=/p/49&" + rng,
		"sample?group_by=country&" + rng,
		"sample?step=1m&" + rng,
	} {
		want := comparable(ref.answer(t, "pv", q))
		for i, f := range all[1:] {
			if got := comparable(f.answer(t, "pv", q)); !reflect.DeepEqual(want, got) {
				t.Errorf("instance %d %s:\nreference %v\ncluster   %v", i, q, want, got)
			}
		}
	}
	for i, f := range all {
		f.checkQuantiles(t, evs, rng)
		if i > 0 {
			checkCoverage(t, f.answer(t, "pv", "users?"+rng), 6, n)
		}
		if i > 0 {
			comparePanes(t, ref, f)
		}
	}
}

// comparePanes compares every pane of every partition with the
// reference's: the same events, the same HLL, count-min and reservoir
// bytes (t-digest bytes depend on when its buffer was compressed).
func comparePanes(t *testing.T, ref, f *partFixture) {
	t.Helper()
	ctx := context.Background()
	rs, _ := ref.m.Get(ctx, "pv")
	fs, _ := f.m.Get(ctx, "pv")
	names := rs.Spec.AggregateNames()
	panes := func(db *store.DB, id uint32) map[string]sketchd.PaneRecord {
		var keys []string
		if err := db.Keys(ctx, id, -1<<62, 1<<62, func(k string) error { keys = append(keys, k); return nil }); err != nil {
			t.Fatal(err)
		}
		out := map[string]sketchd.PaneRecord{}
		if err := db.ScanPanes(ctx, id, keys, -1<<62, 1<<62, func(r sketchd.PaneRecord) error {
			out[fmt.Sprintf("%q@%d", r.Key, r.Start)] = r
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	compared := 0
	for p := range rs.Partitions {
		want, got := panes(ref.db, rs.Partitions[p]), panes(f.db, fs.Partitions[p])
		if len(want) != len(got) {
			t.Errorf("partition %d: %d panes, reference %d", p, len(got), len(want))
		}
		for k, w := range want {
			g, ok := got[k]
			if !ok || g.Events != w.Events {
				t.Errorf("partition %d pane %s: %d events (present %v), reference %d", p, k, g.Events, ok, w.Events)
				continue
			}
			for i, name := range names {
				switch rs.Spec.Aggregates[name].Sketch {
				case sketchd.KindTDigest:
				case sketchd.KindHLL:
					// A sparse HLL's bytes depend on when its temporary
					// set was compacted (a pane reloaded by a new owner
					// compacts earlier): compare its registers, which
					// depend on the set of items alone, and its answer.
					gs, err1 := sketch.Decode(g.Sketches[i])
					ws, err2 := sketch.Decode(w.Sketches[i])
					if err1 != nil || err2 != nil {
						t.Errorf("partition %d pane %s: %s: %v %v", p, k, name, err1, err2)
						continue
					}
					gh, wh := gs.(*sketch.HLL), ws.(*sketch.HLL)
					gr, wr := gh.Registers(), wh.Registers()
					if len(gr) == 0 || !bytes.Equal(gr, wr) || gh.Estimate() != wh.Estimate() {
						t.Errorf("partition %d pane %s: %s registers or estimate differ from the reference", p, k, name)
					}
				default:
					if !bytes.Equal(g.Sketches[i], w.Sketches[i]) {
						t.Errorf("partition %d pane %s: %s differs from the reference", p, k, name)
					}
				}
			}
			compared++
		}
	}
	t.Logf("%d panes equal to the reference's", compared)
}

// TestClusterFencedZombie: while instance A owns partition 0, another
// writer claims it in the changelog (as a new owner would while A is
// paused). A's next commit is refused whole by the fence: A drops the
// partition without a commit or an ack, and (still its target, alone in
// the cluster) claims it again after failover_timeout, resuming from the
// intruder's claim. Every event is stored exactly once.
func TestClusterFencedZombie(t *testing.T) {
	const seed, n = 7, 2000
	t.Logf("seed %d, %d events", seed, n)
	c := clustertest.Start(t, 3, clustertest.Options{})
	a := newClusterNode(t, c, 0)
	spec := partSpec("pv", "z", `,"jetstream_stream":"PV_Z","partitions":2,"partition_by":[1]`)
	createOnCluster(t, a.fixture(), spec)
	var cs *clusterStream
	waitFor(t, 30*time.Second, "both partitions owned", func() (bool, string) {
		if cs = a.m.clusterStreamOf("pv"); cs == nil {
			return false, "no stream"
		}
		return cs.owns(0) && cs.owns(1), ""
	})
	pub := c.Connect(t, 1)
	js, _ := jetstream.New(pub)
	evs := genEvents(seed, n)
	publish := func(from, to int) { t.Helper(); publishAcked(t, js, "ev.z.", evs[from:to]) }
	publish(0, n/2)
	waitFor(t, 30*time.Second, "the first half stored", func() (bool, string) {
		got, s := storedEvents(t, a.m, a.db, "pv")
		return got == n/2, s
	})
	opts, _ := testClusterOptions().Normalize()
	_, mjs := cs.m.conns()
	intruder := cluster.NewWriter(pub, mjs, cs.cl, 0, "intruder", cs.info.Spec, opts)
	rec, err := intruder.Claim(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("intruder claimed partition 0 at epoch %d, position %d", rec.Epoch, sketchd.PositionSeq(rec.Checkpoint.Position))
	publish(n/2, n)
	waitFor(t, 60*time.Second, "every event stored, partition 0 owned again", func() (bool, string) {
		got, s := storedEvents(t, a.m, a.db, "pv")
		return got == n && cs.counts.releases[releaseFenced].Load() == 1 && cs.owns(0), fmt.Sprintf("%s, fenced %d", s, cs.counts.releases[releaseFenced].Load())
	})
	m, err := cs.stream.GetLastMsgForSubject(context.Background(), cs.cl.CheckpointSubject(0))
	if err != nil {
		t.Fatal(err)
	}
	last, err := cluster.DecodeRecord(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if last.Owner != a.m.instance || last.Epoch <= rec.Epoch {
		t.Errorf("partition 0's last record: owner %q epoch %d, want %q after the intruder's epoch %d", last.Owner, last.Epoch, a.m.instance, rec.Epoch)
	}
	// Exactly once: stored events equal n above; the counters agree once
	// the reclaimed partition has published its status (after its commit
	// returns, which is after its panes are readable).
	waitFor(t, 10*time.Second, "the counters", func() (bool, string) {
		st, _ := a.m.Get(context.Background(), "pv")
		c := st.Counters
		return c.OnTime+c.Late >= n, fmt.Sprintf("counters %+v", c)
	})
	st, _ := a.m.Get(context.Background(), "pv")
	if c := st.Counters; c.OnTime+c.Late != n {
		t.Errorf("counters %+v, want %d applied", c, n)
	}

	// A delete leaves the registry, the instance and the changelog.
	if r := a.fixture().do(t, http.MethodDelete, "/v1/streams/pv", ""); r.status/100 != 2 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if _, err := a.m.Get(context.Background(), "pv"); !errors.Is(err, sketchd.ErrNotFound) {
		t.Errorf("after delete: %v, want not found", err)
	}
	if _, err := js.Stream(context.Background(), cs.cl.Name()); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("changelog %s after delete: %v, want gone", cs.cl.Name(), err)
	}
	createOnCluster(t, a.fixture(), spec)
	waitFor(t, 30*time.Second, "the new stream's partitions owned", func() (bool, string) {
		cs2 := a.m.clusterStreamOf("pv")
		return cs2 != nil && cs2.cl.Rev > cs.cl.Rev && cs2.owns(0) && cs2.owns(1), ""
	})
}
