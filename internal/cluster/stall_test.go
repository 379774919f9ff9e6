package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestMirrorConsumerOnLostNode: a node is killed (SIGKILL, child
// nats-server processes) and the mirror's ordered consumer is re-created
// at once (its consumer deleted, as a reconnect or missed heartbeats do),
// until the meta leader places it on the killed node, which it still
// counts online. nats.go's ordered consumer then retries the create under
// that name for as long as the node is gone, and its iterator's Next
// blocks without an error: the symptom of a clean-clone CI run of
// TestClusterProcesses at 8ac4490 (an instance's mirror behind after a
// NATS node's kill, nothing in its log). The owner commits twice more; the
// mirror's watchdog finds it has not moved while the changelog holds
// messages beyond it, rewinds with a new consumer and catches up, and
// sketchd_mirror_restarts_total counts one stalled restart (more when
// the new consumer lands on the killed node again). (Without the
// watchdog the mirror stayed behind for the 45 s this test waited, 3 of 3
// runs at ca91287.) Each re-created consumer lands on the killed node 1
// time in 3 in the first seconds only; a round that misses restarts the
// node and kills it again, and the test skips after 3 rounds.
func TestMirrorConsumerOnLostNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nats-server processes")
	}
	const stallTimeout = 2 * time.Second
	c := clustertest.Start(t, 3, clustertest.Options{Processes: true})
	ctx := testContext(t, 3*time.Minute)
	leader := c.MetaLeader(t)
	meta := slices.IndexFunc([]int{0, 1, 2}, func(i int) bool { return c.Name(i) == leader })
	if meta < 0 {
		t.Fatal("no meta leader")
	}
	// The victim is not the meta leader (a new one would place the
	// consumer on itself); the mirror and the owner stay connected.
	victim := (meta + 1) % 3
	at, other := (victim+1)%3, (victim+2)%3
	spec := testSpec("pageviews")
	spec.Retention = 0
	f := &fixture{c: c, cl: Changelog{Cluster: "t", Stream: spec.Name, Rev: 1}, spec: spec, opts: testOptions(t, "t")}
	s, err := EnsureChangelog(ctx, jetStream(t, c.Connect(t, other)), f.cl, 3)
	if err != nil {
		t.Fatal(err)
	}
	f.stream = s
	w := f.writer(t, other, 0, "owner")
	claim(t, w)
	var m model
	g := &flushGen{rng: rand.New(rand.NewPCG(11, 12))}
	commit := func() { t.Helper(); commitRetrying(t, ctx, w, &m, g.next(&m, 20, 100)) }
	commit()

	db, sids := openStore(t, 1)
	reg := prometheus.NewRegistry()
	mirror, err := NewMirror(ctx, jetStream(t, c.Connect(t, at)), f.cl, sids, db, nil, WithRegisterer(reg), WithStallTimeout(stallTimeout))
	if err != nil {
		t.Fatal(err)
	}
	done := runMirror(t, ctx, mirror)
	caughtUp := func() bool {
		cp, _, _ := db.Checkpoint(ctx, sids[0])
		return cp.Position == m.cp.Position
	}
	waitFor(t, "caught up", caughtUp)

	adminNC := c.Connect(t, other)
	cs := consumers{t: t, nc: adminNC, js: jetStream(t, adminNC), stream: f.cl.Name()}
	name, killed := "", time.Time{}
	for round := 1; ; round++ {
		name = cs.newest(ctx)
		for cs.host(ctx, name) == c.Name(victim) { // not there already
			name = cs.replace(ctx, name)
		}
		c.Kill(t, victim)
		killed = time.Now()
		landed := false
		for tries := 0; tries < 30 && !landed && time.Since(killed) < 15*time.Second; tries++ {
			name = cs.replace(ctx, name)
			landed = cs.lost(ctx, name)
		}
		if landed {
			break
		}
		if round == 3 {
			t.Skipf("no re-created consumer was placed on the killed node %s in 3 rounds (it is only in the first seconds)", c.Name(victim))
		}
		t.Logf("round %d: no re-created consumer was placed on the killed node %s in %s; restarting it", round, c.Name(victim), time.Since(killed).Round(time.Millisecond))
		if err := c.Restart(t, victim); err != nil {
			t.Log(err)
		}
		waitFor(t, "caught up", caughtUp)
	}
	t.Logf("consumer %s placed on the killed node %s %s after the kill", name, c.Name(victim), time.Since(killed).Round(time.Millisecond))

	commit()
	commit()
	committed := time.Now()
	// The watchdog's bound (the stall timeout, plus a check interval
	// either side) and a new consumer's create, with room for a loaded
	// machine; without the watchdog the mirror waits for the node.
	deadline := committed.Add(stallTimeout + 20*time.Second)
	for !caughtUp() {
		stopped(t, done)
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up in %s (consumers %v)", time.Since(committed).Round(time.Second), cs.names(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("caught up %s after the last commit, %s after the kill", time.Since(committed).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	checkPartition(t, db, sids[0], &m)
	restarts := promtest.Series(t, reg)
	// The watchdog's new consumer is placed by the same meta leader, which
	// may still count the killed node online and put it there again (1
	// time in 3 in the first seconds): a second stall and restart is then
	// the watchdog doing its job (seen once in a clean-clone CI run under
	// the -race suite's load, 10bc1d9). A third in a row is unlikely (1 in
	// 27) and a fourth means it restarts without a stall.
	got := restarts[`sketchd_mirror_restarts_total{reason="stalled",stream="pageviews"}`]
	if got < 1 || got > 3 {
		t.Errorf("stalled restarts %v, want 1 (up to 3 when a new consumer lands on the killed node again)", got)
	} else if got > 1 {
		t.Logf("stalled restarts %v: the watchdog's new consumer landed on the killed node again", got)
	}
	if got := restarts[`sketchd_mirror_restarts_total{reason="error",stream="pageviews"}`]; got != 0 {
		t.Errorf("error restarts %v, want 0", got)
	}
}

// consumers looks at a stream's ordered consumers (named
// <prefix>_<serial>), as an operator would. Nothing here asks for the
// stream's info: that goes unanswered while the stream elects a leader.
type consumers struct {
	t      testing.TB
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
}

// names lists the stream's consumers (the meta leader answers, from its
// assignments), asking again when a request goes unanswered for 2 s.
func (cs consumers) names(ctx context.Context) []string {
	cs.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := cs.list(ctx)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			cs.t.Fatalf("consumers of %s: %v", cs.stream, err)
		}
	}
}

func (cs consumers) list(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := cs.nc.RequestWithContext(ctx, "$JS.API.CONSUMER.NAMES."+cs.stream, []byte(`{"offset":0}`))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Consumers []string `json:"consumers"`
		Error     *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, errors.New(resp.Error.Description)
	}
	return resp.Consumers, nil
}

// newest is the consumer with the highest serial ("" when there is none).
func (cs consumers) newest(ctx context.Context) string {
	cs.t.Helper()
	best, serial := "", -1
	for _, n := range cs.names(ctx) {
		if v := ordinal(n); v > serial {
			best, serial = n, v
		}
	}
	return best
}

// ordinal is an ordered consumer's serial (-1 for another name).
func ordinal(name string) int {
	i := strings.LastIndexByte(name, '_')
	v, err := strconv.Atoi(name[i+1:])
	if i < 0 || err != nil {
		return -1
	}
	return v
}

// host is the node that answers for consumer name ("" when none does
// within a second).
func (cs consumers) host(ctx context.Context, name string) string {
	ictx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := cs.js.Consumer(ictx, cs.stream, name)
	if err != nil || c.CachedInfo().Cluster == nil {
		return ""
	}
	return c.CachedInfo().Cluster.Leader
}

// replace deletes consumer name, so that the ordered consumer creates
// the next, and returns the newest consumer once one with a higher serial
// is assigned (after 10 s, whatever is newest).
func (cs consumers) replace(ctx context.Context, name string) string {
	cs.t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := cs.js.DeleteConsumer(dctx, cs.stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		cs.t.Logf("delete %s: %v", name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := cs.newest(ctx)
		if ordinal(n) > ordinal(name) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lost reports whether consumer name is assigned (listed by the meta
// leader) but answered by no node for 3 s; false once a node answers for
// it.
func (cs consumers) lost(ctx context.Context, name string) bool {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if cs.host(ctx, name) != "" {
			return false
		}
	}
	return slices.Contains(cs.names(ctx), name) && cs.host(ctx, name) == ""
}
