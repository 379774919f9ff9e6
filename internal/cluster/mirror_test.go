package cluster

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestMirrorFollows: an owner commits through ChangelogCommitter (the
// changelog, then its own store with the record's sequence); a standby's
// mirror, running, follows every commit into its store and is Restored
// once it reached the head; the owner's own mirror finds nothing to apply.
func TestMirrorFollows(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	const partitions = 2
	ownerDB, ownerSIDs := openStore(t, partitions)
	standbyDB, standbySIDs := openStore(t, partitions)

	mirror, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 1)), f.cl, standbySIDs, standbyDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := runMirror(t, ctx, mirror)
	waitFor(t, "restored (empty changelog)", func() bool {
		if len(done) > 0 {
			err := <-done
			done <- err
			t.Fatalf("the mirror stopped: %v", err)
		}
		return mirror.Restored()
	})

	models := make([]model, partitions)
	for p := range partitions {
		w := f.writer(t, 0, p, "owner")
		claim(t, w)
		c := ChangelogCommitter{Writer: w, Local: ownerDB}
		g := &flushGen{rng: rand.New(rand.NewPCG(uint64(p), 9))}
		for i := range 4 {
			fl := g.next(&models[p], 3+i*7, 300)
			if err := c.Commit(ctx, ownerSIDs[p], fl); err != nil {
				t.Fatalf("partition %d commit %d: %v", p, i, err)
			}
			models[p].apply(fl)
		}
		checkPartition(t, ownerDB, ownerSIDs[p], &models[p])
	}
	waitFor(t, "standby caught up", func() bool {
		for p := range partitions {
			seq, _, _ := standbyDB.ChangelogSeq(ctx, standbySIDs[p])
			own, _, _ := ownerDB.ChangelogSeq(ctx, ownerSIDs[p])
			if seq != own || seq == 0 {
				return false
			}
		}
		return true
	})
	for p := range partitions {
		checkPartition(t, standbyDB, standbySIDs[p], &models[p])
	}

	self, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 2)), f.cl, ownerSIDs, ownerDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := self.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st := self.Stats(); st.Records != 0 || !self.Restored() {
		t.Fatalf("owner's own mirror applied %+v (restored %v), want nothing", st, self.Restored())
	}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not %s after 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMirrorSkipsCorrupt: a changelog message that does not decode (bad
// checksum, a key that does not hash to its subject, an unknown subject
// kind) is counted and skipped; the partition's good records still apply.
func TestMirrorSkipsCorrupt(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	nc := f.c.Connect(t, 0)
	js := jetStream(t, nc)
	good := sketchd.PaneRecord{Key: sketchd.EncodeKey("de"), Start: 0, Applied: 1, Sketches: [][]byte{{1}}}
	body := encodePane(&good)
	bad := append([]byte(nil), body...)
	bad[3] ^= 1
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{f.cl.PaneSubject(0, good.Key, 60e9), bad},                         // checksum
		{f.cl.PaneSubject(0, sketchd.EncodeKey("fr"), 0), body},            // key hash
		{strings.TrimSuffix(f.cl.CheckpointSubject(0), ".c") + ".x", body}, // kind
	} {
		publishStored(ctx, t, js, m.subject, m.data)
	}
	w := f.writer(t, 1, 0, "owner")
	claim(t, w)
	var mod model
	fl := sketchd.Flush{Panes: []sketchd.PaneRecord{good}, Checkpoint: sketchd.Checkpoint{Position: 1}, Gen: 1}
	if _, err := w.Commit(ctx, fl); err != nil {
		t.Fatal(err)
	}
	mod.apply(fl)
	db, sids := openStore(t, 1)
	mirror, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 2)), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mirror.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st := mirror.Stats(); st.Corrupt != 3 {
		t.Fatalf("stats %+v, want 3 corrupt", st)
	}
	checkPartition(t, db, sids[0], &mod)
}

// TestMirrorCatchUpGoneHead: the changelog's last sequence is a message
// removed since (a head no consumer delivers): a catch-up confirms with
// the leader that nothing is left after the last message it read, so it
// returns with the partition applied and nothing pending, where waiting
// for the head itself would wait until its context ended.
func TestMirrorCatchUpGoneHead(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	nc := f.c.Connect(t, 0)
	js := jetStream(t, nc)
	w := f.writer(t, 0, 0, "owner")
	claim(t, w)
	var mod model
	fl := (&flushGen{rng: rand.New(rand.NewPCG(1, 17))}).next(&mod, 5, 50)
	if _, err := w.Commit(ctx, fl); err != nil {
		t.Fatal(err)
	}
	mod.apply(fl)
	stray := sketchd.PaneRecord{Key: sketchd.EncodeKey("gone"), Start: 0, Applied: 1, Sketches: [][]byte{{1}}}
	publishStored(ctx, t, js, f.cl.PaneSubject(0, stray.Key, 0), encodePane(&stray))
	head := f.lastSeq(t)
	s, err := js.Stream(ctx, f.cl.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, head); err != nil {
		t.Fatal(err)
	}
	if got := f.lastSeq(t); got != head {
		t.Fatalf("last sequence %d after removing it, want %d kept", got, head)
	}
	db, sids := openStore(t, 1)
	mirror, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 2)), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := mirror.CatchUp(cctx); err != nil {
		t.Fatalf("catch-up to a removed head: %v", err)
	}
	if n := mirror.Pending(0); n != 0 {
		t.Errorf("pending %d after catching up, want 0", n)
	}
	checkPartition(t, db, sids[0], &mod)
}

// TestMirrorHoldRelease: while this instance owns a partition (Hold), its
// mirror applies none of it, even a batch that reached the changelog but
// not the local store; once another instance has claimed it and this one
// lets go (Release), the mirror rewinds to the store's applied sequence
// and applies that batch and the new owner's.
func TestMirrorHoldRelease(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	db, sids := openStore(t, 1)
	mirror, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 0)), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	runMirror(t, ctx, mirror)
	waitFor(t, "restored", mirror.Restored)

	var m model
	g := &flushGen{rng: rand.New(rand.NewPCG(7, 8))}
	mirror.Hold(0)
	w := f.writer(t, 0, 0, "a")
	claim(t, w)
	local := ChangelogCommitter{Writer: w, Local: db}
	fl := g.next(&m, 10, 200)
	if err := local.Commit(ctx, sids[0], fl); err != nil {
		t.Fatal(err)
	}
	m.apply(fl)
	ownSeq, _, _ := db.ChangelogSeq(ctx, sids[0])
	// The changelog takes the next flush; the local commit never happens.
	lost := g.next(&m, 10, 200)
	if _, err := w.Commit(ctx, lost); err != nil {
		t.Fatal(err)
	}
	m.apply(lost)
	time.Sleep(500 * time.Millisecond) // the running mirror sees it and must not apply it
	if seq, _, _ := db.ChangelogSeq(ctx, sids[0]); seq != ownSeq {
		t.Fatalf("held partition applied by the mirror: sequence %d → %d", ownSeq, seq)
	}

	heir := f.writer(t, 1, 0, "b")
	claim(t, heir)
	fl = g.next(&m, 10, 200)
	if _, err := heir.Commit(ctx, fl); err != nil {
		t.Fatal(err)
	}
	m.apply(fl)
	mirror.Release(0)
	waitFor(t, "the heir's commit applied", func() bool {
		cp, _, _ := db.Checkpoint(ctx, sids[0])
		return cp.Position == m.cp.Position
	})
	checkPartition(t, db, sids[0], &m)
}

// TestMirrorRetriesFailedRead: the changelog refuses the mirror's
// consumer (its stream allows one consumer, which another holds: the
// server answers "maximum consumers limit reached"); Run does not end:
// it logs, counts (sketchd_mirror_restarts_total{reason="error"}) and
// retries with backoff, and once the other consumer is gone it catches
// up. (Before, Run returned the error: checked.)
func TestMirrorRetriesFailedRead(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	spec := testSpec("pageviews")
	spec.Retention = 0
	f := &fixture{c: c, cl: Changelog{Cluster: "t", Stream: spec.Name, Rev: 1}, spec: spec, opts: testOptions(t, "t")}
	js := jetStream(t, c.Connect(t, 0))
	// Like the changelog's own create (retryAdmin), a create on a
	// cluster just started can be refused until the meta leader sees the
	// peers (10005 "no suitable peers for placement": a clean-clone CI run).
	var s jetstream.Stream
	err := retryAdmin(ctx, func(actx context.Context) (err error) {
		s, err = js.CreateStream(actx, jetstream.StreamConfig{Name: f.cl.Name(), Subjects: []string{f.cl.Subjects()},
			Replicas: 3, MaxMsgsPerSubject: 1, AllowAtomicPublish: true, AllowMsgTTL: true, AllowDirect: true, MaxConsumers: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitLeader(ctx, s); err != nil {
		t.Fatal(err)
	}
	f.stream = s
	err = retryAdmin(ctx, func(actx context.Context) error {
		_, err := s.CreateConsumer(actx, jetstream.ConsumerConfig{Durable: "other", AckPolicy: jetstream.AckNonePolicy})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w := f.writer(t, 1, 0, "owner")
	claim(t, w)
	var m model
	fl := (&flushGen{rng: rand.New(rand.NewPCG(3, 4))}).next(&m, 10, 100)
	if _, err := w.Commit(ctx, fl); err != nil {
		t.Fatal(err)
	}
	m.apply(fl)

	reg := prometheus.NewRegistry()
	db, sids := openStore(t, 1)
	mirror, err := NewMirror(ctx, jetStream(t, c.Connect(t, 2)), f.cl, sids, db, nil, WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	done := runMirror(t, ctx, mirror)
	failed := func() float64 {
		return promtest.Series(t, reg)[`sketchd_mirror_restarts_total{reason="error",stream="pageviews"}`]
	}
	waitFor(t, "two failed reads", func() bool {
		stopped(t, done)
		return failed() >= 2
	})
	if err := s.DeleteConsumer(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "caught up", func() bool {
		stopped(t, done)
		return mirror.Restored()
	})
	checkPartition(t, db, sids[0], &m)
	if got := promtest.Series(t, reg)[`sketchd_mirror_restarts_total{reason="stalled",stream="pageviews"}`]; got != 0 {
		t.Errorf("stalled restarts %v, want 0", got)
	}
}

// stopped fails the test if a running mirror's Run returned (its result
// is put back for the cleanup that waits for it).
func stopped(tb testing.TB, done chan error) {
	tb.Helper()
	select {
	case err := <-done:
		done <- err
		tb.Fatalf("the mirror stopped: %v", err)
	default:
	}
}

// runMirror runs m until the test ends and returns the channel its Run's
// result arrives on.
func runMirror(t *testing.T, ctx context.Context, m *Mirror) chan error {
	t.Helper()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	return done
}
