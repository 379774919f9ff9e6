package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClaimResentWhileNoResponders: a claim published while no stream
// listens on the partition's checkpoint subject (what a client sees while
// the changelog elects a leader, or before its interest reaches the
// client's server: TestClusterOwnershipMetrics' failed claim in a CI run)
// is sent again until the stream answers. The changelog here first
// covers only the panes' subjects; once the claimer has been refused
// twice (the server counts its messages), the stream takes the checkpoint
// subject and the claim lands, once, at epoch 1.
func TestClaimResentWhileNoResponders(t *testing.T) {
	n := newOneNode(t)
	n.setSubjects(t, n.cl.prefix()+".*.p.>")
	w := n.writer(t, n.ns.ClientURL(), 0)
	claimed := start(func() (Record, error) { return w.Claim(n.ctx) })
	waitAttempts(t, n.ns, claimed, 2)
	n.setSubjects(t, n.cl.Subjects())
	rec, err := claimed.wait()
	if err != nil {
		t.Fatalf("claim after the stream took its subject: %v", err)
	}
	n.checkOneClaim(t, w, rec)
}

// TestClaimLandedAnswerLost: a claim that landed although its answer was
// lost (held back past the attempt's timeout by a proxy between the
// claimer and the server) is sent again; the resend fails its fence, and
// the claimer finds its own record there: the claim is made, at epoch 1,
// without a second record (no epoch 2 over its own claim).
func TestClaimLandedAnswerLost(t *testing.T) {
	n := newOneNode(t)
	proxy := newHoldProxy(t, n.ns.Addr().String())
	w := n.writer(t, proxy.url(), 300*time.Millisecond)
	proxy.hold()
	claimed := start(func() (Record, error) { return w.Claim(n.ctx) })
	waitLanded(n.ctx, t, n.s, n.cl.CheckpointSubject(0), 1, claimed)
	waitAttempts(t, n.ns, claimed, 2) // a resend after the landing
	proxy.resume()
	rec, err := claimed.wait()
	if err != nil {
		t.Fatalf("claim whose answer was lost: %v", err)
	}
	n.checkOneClaim(t, w, rec)
}

// TestCommitResentWhileNoResponders: a commit whose batch finds no stream
// listening (the changelog electing its leader) is sent again until the
// stream answers, within PublishTimeout, instead of failing the commit
// (which pauses ingestion and fails readiness until the next flush).
func TestCommitResentWhileNoResponders(t *testing.T) {
	n := newOneNode(t)
	w := n.writer(t, n.ns.ClientURL(), 0)
	claim(t, w) // message 1
	n.setSubjects(t, n.cl.prefix()+".none.>")
	fl := (&flushGen{rng: rand.New(rand.NewPCG(3, 4))}).next(&model{}, 3, 100)
	committed := start(func() (uint64, error) { return w.Commit(n.ctx, fl) })
	waitAttempts(t, n.ns, committed, 3) // two batch starts refused
	n.setSubjects(t, n.cl.Subjects())
	if seq, err := committed.wait(); err != nil || seq != 5 {
		t.Fatalf("commit once the stream answers: seq %d, %v; want 5 (3 panes and the record after the claim)", seq, err)
	}
}

// TestCommitLandedAnswerLost: a commit (one record: an idle flush) whose
// answer is lost (held back past PublishTimeout by the proxy) is not sent
// again, its time being spent: Commit reports the timeout, and the next
// Commit of the same flush finds the writer's own record closing it and
// returns its sequence without a second copy.
func TestCommitLandedAnswerLost(t *testing.T) {
	n := newOneNode(t)
	proxy := newHoldProxy(t, n.ns.Addr().String())
	w := n.writer(t, proxy.url(), 300*time.Millisecond)
	claim(t, w) // message 1
	proxy.hold()
	fl := (&flushGen{rng: rand.New(rand.NewPCG(5, 6))}).next(&model{}, 0, 100)
	if _, err := w.Commit(n.ctx, fl); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit whose answer is held: %v, want the attempt's deadline", err)
	}
	proxy.resume()
	if seq, err := w.Commit(n.ctx, fl); err != nil || seq != 2 {
		t.Fatalf("the same flush again: seq %d, %v; want 2", seq, err)
	}
	if info, err := n.s.Info(n.ctx); err != nil || info.State.LastSeq != 2 {
		t.Fatalf("changelog last seq %v (%v), want 2: the record once", info.State.LastSeq, err)
	}
}

// TestRegistryDeleteResentWhileNoResponders: a registry delete that finds
// no stream listening (the bucket electing its leader) is sent again until
// the bucket answers, instead of failing the stream's DELETE.
func TestRegistryDeleteResentWhileNoResponders(t *testing.T) {
	ns := startServer(t)
	ctx := testContext(t, time.Minute)
	admin := jetStream(t, connect(t, ns.ClientURL(), "admin"))
	reg, err := OpenRegistry(ctx, jetStream(t, connect(t, ns.ClientURL(), "registry")), singleNode(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, testSpec("pv")); err != nil {
		t.Fatal(err)
	}
	bucket := RegistryBucket("t")
	s, err := admin.Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Subjects = []string{"$KV." + bucket + ".none.>"}
	if _, err := admin.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	base := inMsgs(t, ns, "registry")
	deleted := start(func() (struct{}, error) { return struct{}{}, reg.Delete(ctx, "pv") })
	// The get, nats.go's own three tries, then two resends.
	waitMessages(t, ns, "registry", deleted, base+6)
	cfg.Subjects = []string{"$KV." + bucket + ".>"}
	if _, err := admin.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := deleted.wait(); err != nil {
		t.Fatalf("delete once the bucket answers: %v", err)
	}
	if _, _, err := reg.Get(ctx, "pv"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("get after the delete: %v, want ErrStreamNotFound", err)
	}
}

// TestRegistryDeleteLandedAnswerLost: a registry delete that landed with
// its answer lost (held by the proxy past the attempt's 10 s) is sent
// again; the bucket refuses the resend (the revision is gone), and the
// name is found deleted: the delete succeeds. The name registered again
// afterwards gets its own entry.
func TestRegistryDeleteLandedAnswerLost(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out one admin attempt (10 s)")
	}
	ns := startServer(t)
	ctx := testContext(t, time.Minute)
	proxy := newHoldProxy(t, ns.Addr().String())
	reg, err := OpenRegistry(ctx, jetStream(t, connect(t, proxy.url(), "registry")), singleNode(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, testSpec("pv")); err != nil {
		t.Fatal(err)
	}
	admin, err := jetStream(t, connect(t, ns.ClientURL(), "admin")).KeyValue(ctx, RegistryBucket("t"))
	if err != nil {
		t.Fatal(err)
	}
	proxy.holdOn("PUB $KV." + RegistryBucket("t") + ".pv ")
	deleted := start(func() (struct{}, error) { return struct{}{}, reg.Delete(ctx, "pv") })
	for {
		_, err := admin.Get(ctx, "pv")
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break // landed; its answer is held
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-deleted.done:
			t.Fatalf("delete returned before it landed: %v", deleted.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	landed := inMsgs(t, ns, "registry")
	waitMessages(t, ns, "registry", deleted, landed+1) // a resend once the attempt timed out
	proxy.resume()
	if _, err := deleted.wait(); err != nil {
		t.Fatalf("delete whose answer was lost: %v", err)
	}
	if _, err := reg.Create(ctx, testSpec("pv")); err != nil {
		t.Fatalf("registering the name again: %v", err)
	}
}

// singleNode is cluster "t" on one server (replicas 1).
func singleNode(t *testing.T) Options {
	o := testOptions(t, "t")
	o.Replicas = 1
	return o
}

// pending is a call running in its own goroutine.
type pending[T any] struct {
	v    T
	err  error
	done chan struct{}
}

func start[T any](f func() (T, error)) *pending[T] {
	p := &pending[T]{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.v, p.err = f()
	}()
	return p
}

func (p *pending[T]) wait() (T, error) {
	<-p.done
	return p.v, p.err
}

// waitAttempts waits until the server has received n messages from the
// connection named "claimer" (the writer's: its reads go through the admin
// connection's stream handle, so each is a publish); the call must not
// return before.
func waitAttempts[T any](t *testing.T, ns *server.Server, call *pending[T], n uint64) {
	t.Helper()
	waitMessages(t, ns, "claimer", call, n)
}

// waitMessages waits until the server has received n messages from the
// connection named name; the call must not return before.
func waitMessages[T any](t *testing.T, ns *server.Server, name string, call *pending[T], n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := inMsgs(t, ns, name)
		if got >= n {
			return
		}
		select {
		case <-call.done:
			t.Fatalf("returned after %d messages (%v), want it to keep trying", got, call.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages after 30s, want %d", got, n)
		}
	}
}

// waitLanded waits until subject's last message is at seq; the call must
// not return before.
func waitLanded[T any](ctx context.Context, t *testing.T, s jetstream.Stream, subject string, seq uint64, call *pending[T]) {
	t.Helper()
	for {
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if err == nil && m.Sequence == seq {
			return // landed; its answer is held
		}
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		select {
		case <-call.done:
			t.Fatalf("returned before it landed: %v", call.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// oneNode is a single nats-server (JetStream on a temporary directory)
// with the R1 changelog of stream "pageviews", read through an admin
// connection.
type oneNode struct {
	ns    *server.Server
	ctx   context.Context
	cl    Changelog
	admin jetstream.JetStream
	s     jetstream.Stream
}

func newOneNode(t *testing.T) *oneNode {
	t.Helper()
	n := &oneNode{ns: startServer(t), ctx: testContext(t, time.Minute), cl: Changelog{Cluster: "t", Stream: "pageviews", Rev: 1}}
	n.admin = jetStream(t, connect(t, n.ns.ClientURL(), "admin"))
	s, err := EnsureChangelog(n.ctx, n.admin, n.cl, 1)
	if err != nil {
		t.Fatal(err)
	}
	n.s = s
	return n
}

// writer is partition 0's writer for "owner" publishing on a connection
// to url named "claimer" (waitAttempts counts its messages) and reading
// the changelog's leader on the admin connection (a proxy at url holds
// only the publishes' answers); timeout, unless 0, is its PublishTimeout.
func (n *oneNode) writer(t *testing.T, url string, timeout time.Duration) *Writer {
	t.Helper()
	o := testOptions(t, "t")
	if timeout > 0 {
		o.PublishTimeout = timeout
	}
	return NewWriter(connect(t, url, "claimer"), n.admin, n.cl, 0, "owner", testSpec("pageviews"), o)
}

// setSubjects makes the changelog capture subjects instead: a subject it
// no longer captures gets no responders.
func (n *oneNode) setSubjects(t *testing.T, subjects ...string) {
	t.Helper()
	info, err := n.s.Info(n.ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.Subjects = subjects
	if _, err := n.admin.UpdateStream(n.ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// checkOneClaim: rec is the partition's first claim (owner, epoch 1), the
// changelog holds it alone, at the sequence the writer fences on: its
// next commit is accepted.
func (n *oneNode) checkOneClaim(t *testing.T, w *Writer, rec Record) {
	t.Helper()
	ctx := n.ctx
	if rec.Owner != "owner" || rec.Epoch != 1 || w.Epoch() != 1 {
		t.Errorf("claimed %+v (writer epoch %d), want owner at epoch 1", rec, w.Epoch())
	}
	info, err := n.s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.State.LastSeq != 1 {
		t.Errorf("changelog holds %d messages, last %d; want the one claim record at 1", info.State.Msgs, info.State.LastSeq)
	}
	m, err := n.s.GetLastMsgForSubject(ctx, n.cl.CheckpointSubject(0))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeRecord(m.Data); err != nil || got.Owner != "owner" || got.Epoch != 1 {
		t.Errorf("stored claim %+v (%v), want owner at epoch 1", got, err)
	}
	fl := (&flushGen{rng: rand.New(rand.NewPCG(1, 2))}).next(&model{}, 3, 100)
	if seq, err := w.Commit(ctx, fl); err != nil || seq != 5 {
		t.Errorf("commit after the claim: seq %d, %v; want 5 (3 panes and the record after the claim)", seq, err)
	}
}

// inMsgs is the number of messages the server received from the
// connection named name.
func inMsgs(t *testing.T, ns *server.Server, name string) uint64 {
	t.Helper()
	cz, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cz.Conns {
		if c.Name == name {
			return uint64(c.InMsgs)
		}
	}
	return 0
}

func startServer(tb testing.TB) *server.Server {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: tb.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		tb.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		tb.Fatal("nats-server not ready")
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func connect(tb testing.TB, url, name string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, nats.Name(name))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
