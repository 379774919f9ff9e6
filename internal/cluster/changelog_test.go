package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/store"
)

// fixture is a 3-node R3 cluster with one stream's changelog.
type fixture struct {
	c      *clustertest.Cluster
	cl     Changelog
	spec   sketchd.Stream
	opts   Options
	stream jetstream.Stream
}

func newFixture(tb testing.TB, o clustertest.Options) *fixture {
	tb.Helper()
	c := clustertest.Start(tb, 3, o)
	ctx := testContext(tb, time.Minute)
	spec := testSpec("pageviews")
	spec.Retention = 0 // keep every pane: the tests' panes are near the epoch
	f := &fixture{c: c, cl: Changelog{Cluster: "t", Stream: spec.Name, Rev: 1}, spec: spec, opts: testOptions(tb, "t")}
	s, err := EnsureChangelog(ctx, jetStream(tb, c.Connect(tb, 0)), f.cl, 3)
	if err != nil {
		tb.Fatal(err)
	}
	f.stream = s
	return f
}

// writer returns partition p's writer for owner, connected to node i.
func (f *fixture) writer(tb testing.TB, i, p int, owner string) *Writer {
	tb.Helper()
	nc := f.c.Connect(tb, i)
	js := jetStream(tb, nc)
	// The changelog must be there. Like the creates, a lookup on a
	// just-started cluster can go unanswered (seen in a clean-clone CI
	// run): retried per attempt.
	err := retryAdmin(testContext(tb, time.Minute), func(ctx context.Context) (err error) {
		_, err = js.Stream(ctx, f.cl.Name())
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return NewWriter(nc, js, f.cl, p, owner, f.spec, f.opts)
}

func (f *fixture) lastSeq(tb testing.TB) uint64 {
	tb.Helper()
	info, err := f.stream.Info(testContext(tb, 10*time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.LastSeq
}

func claim(tb testing.TB, w *Writer) Record {
	tb.Helper()
	r, err := w.Claim(testContext(tb, 30*time.Second))
	if err != nil {
		tb.Fatalf("claim: %v", err)
	}
	return r
}

// model is what a partition's changelog should restore to: the newest
// version of each pane and the last checkpoint.
type model struct {
	panes map[paneID]sketchd.PaneRecord
	cp    sketchd.Checkpoint
	gen   uint64
}

// flushGen makes deterministic flushes of random panes over a few keys
// and minutes, raising positions like an aggregator.
type flushGen struct {
	rng *rand.Rand
	pos uint64
}

func (g *flushGen) next(m *model, panes, size int) sketchd.Flush {
	f := sketchd.Flush{Gen: m.gen + 1}
	seen := map[paneID]bool{}
	for len(f.Panes) < panes {
		g.pos++
		id := paneID{sketchd.EncodeKey(fmt.Sprintf("k%d", g.rng.IntN(panes*2))), int64(g.rng.IntN(30)) * int64(time.Minute)}
		if seen[id] {
			continue
		}
		seen[id] = true
		sk := make([]byte, size)
		for i := range sk {
			sk[i] = byte(g.rng.Uint32())
		}
		f.Panes = append(f.Panes, sketchd.PaneRecord{Key: id.key, Start: id.start, Events: g.pos, Applied: g.pos << 20, Sketches: [][]byte{sk}})
	}
	f.Checkpoint = sketchd.Checkpoint{Position: g.pos << 20, MaxEventTime: int64(g.pos), Watermark: int64(g.pos) - 5,
		Counters: sketchd.Counters{OnTime: g.pos, Invalid: map[string]uint64{"json": 1}}}
	return f
}

func (m *model) apply(f sketchd.Flush) {
	if m.panes == nil {
		m.panes = map[paneID]sketchd.PaneRecord{}
	}
	for _, p := range f.Panes {
		m.panes[paneID{p.Key, p.Start}] = p
	}
	m.cp = f.Checkpoint
	m.gen = f.Gen
}

// TestChangelogRestore: three owners, one per node, commit a partition each
// (one flush spans several atomic batches); a fourth instance restores the
// changelog into its own Badger through the mirror and holds every
// partition's panes and checkpoint exactly, with the applied sequences
// kept in the store so a second pass applies nothing.
func TestChangelogRestore(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	f.opts.MaxBatchMsgs = 50 // a 120-pane flush is 3 batches
	ctx := testContext(t, 2*time.Minute)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const partitions = 3
	models := make([]model, partitions)
	for p := range partitions {
		w := f.writer(t, p, p, fmt.Sprintf("owner%d", p))
		claim(t, w)
		g := &flushGen{rng: rand.New(rand.NewPCG(seed, uint64(p)))}
		for i, n := range []int{5, 120, 0, 30} {
			fl := g.next(&models[p], n, 200+p*100)
			if n == 0 { // an idle flush: the checkpoint moves, no pane
				fl.Checkpoint.Watermark += int64(i)
			}
			if _, err := w.Commit(ctx, fl); err != nil {
				t.Fatalf("partition %d flush %d: %v", p, i, err)
			}
			models[p].apply(fl)
		}
	}

	db, sids := openStore(t, partitions)
	m, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 1)), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Restored() {
		t.Fatal("restored before any catch-up")
	}
	if err := m.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if !m.Restored() || m.Stats().Corrupt != 0 {
		t.Fatalf("restored %v, stats %+v", m.Restored(), m.Stats())
	}
	for p := range partitions {
		checkPartition(t, db, sids[p], &models[p])
	}

	// A new mirror on the same store resumes after the applied sequences.
	again, err := NewMirror(ctx, jetStream(t, f.c.Connect(t, 2)), f.cl, sids, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st := again.Stats(); st.Records != 0 || st.Panes != 0 {
		t.Fatalf("second pass applied %+v, want nothing", st)
	}
}

// openStore opens a Badger store with one stream per partition.
func openStore(tb testing.TB, partitions int) (*store.DB, []uint32) {
	tb.Helper()
	o := store.DefaultOptions()
	o.GCInterval, o.RetentionInterval = -1, -1
	db, err := store.Open(tb.TempDir(), nil, nil, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	sids := make([]uint32, partitions)
	for p := range sids {
		spec := testSpec(fmt.Sprintf("pageviews_p%d", p))
		spec.Retention = 0
		info, err := db.CreateStream(context.Background(), spec)
		if err != nil {
			tb.Fatal(err)
		}
		sids[p] = info.ID
	}
	return db, sids
}

// checkPartition compares a store stream with its model.
func checkPartition(tb testing.TB, db *store.DB, sid uint32, m *model) {
	tb.Helper()
	ctx := context.Background()
	cp, ok, err := db.Checkpoint(ctx, sid)
	if err != nil || !ok || !reflect.DeepEqual(cp, m.cp) {
		tb.Fatalf("stream %d checkpoint %+v (ok %v, %v), want %+v", sid, cp, ok, err, m.cp)
	}
	var keys []string
	if err := db.Keys(ctx, sid, 0, int64(time.Hour), func(k string) error { keys = append(keys, k); return nil }); err != nil {
		tb.Fatal(err)
	}
	got := map[paneID]sketchd.PaneRecord{}
	err = db.ScanPanes(ctx, sid, keys, 0, int64(time.Hour), func(p sketchd.PaneRecord) error {
		got[paneID{p.Key, p.Start}] = p
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) != len(m.panes) {
		tb.Fatalf("stream %d: %d panes, want %d", sid, len(got), len(m.panes))
	}
	for id, want := range m.panes {
		if g := got[id]; g.Applied != want.Applied || g.Events != want.Events || !reflect.DeepEqual(g.Sketches, want.Sketches) {
			tb.Fatalf("stream %d pane %q@%d: applied %d events %d, want %d %d (or sketches differ)", sid, id.key, id.start, g.Applied, g.Events, want.Applied, want.Events)
		}
	}
}

// TestChangelogFencedZombie: an owner whose partition was claimed by
// another instance has its next batch rejected whole: none of its panes
// is stored, and the new owner's commits go on.
func TestChangelogFencedZombie(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	var m model
	g := &flushGen{rng: rand.New(rand.NewPCG(1, 2))}
	zombie := f.writer(t, 0, 0, "zombie")
	claim(t, zombie)
	fl := g.next(&m, 10, 100)
	if _, err := zombie.Commit(ctx, fl); err != nil {
		t.Fatal(err)
	}
	heir := f.writer(t, 1, 0, "heir")
	if r := claim(t, heir); r.Epoch != 2 || r.Checkpoint.Position != fl.Checkpoint.Position {
		t.Fatalf("claim took epoch %d at %d, want 2 at %d", r.Epoch, r.Checkpoint.Position, fl.Checkpoint.Position)
	}
	before := f.lastSeq(t)
	stale := g.next(&m, 20, 100)
	_, err := zombie.Commit(ctx, stale)
	var fe *FencedError
	if !errors.Is(err, ErrFenced) || !errors.As(err, &fe) || fe.Owner != "heir" || fe.Epoch != 2 {
		t.Fatalf("zombie commit: %v, want fenced by heir at epoch 2", err)
	}
	if after := f.lastSeq(t); after != before {
		t.Fatalf("the rejected batch stored messages: last sequence %d → %d", before, after)
	}
	for _, p := range stale.Panes {
		if msg, err := f.stream.GetLastMsgForSubject(ctx, f.cl.PaneSubject(0, p.Key, p.Start)); err == nil && msg.Sequence > before {
			t.Fatalf("pane %q of the rejected batch is stored at %d", p.Key, msg.Sequence)
		}
	}
	if _, err := heir.Commit(ctx, g.next(&m, 5, 100)); err != nil {
		t.Fatalf("heir: %v", err)
	}
	// A multi-batch flush of the zombie is rejected at its first batch.
	zombie.opts.MaxBatchMsgs = 4
	before = f.lastSeq(t)
	if _, err := zombie.Commit(ctx, g.next(&m, 12, 100)); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie multi-batch: %v", err)
	}
	if after := f.lastSeq(t); after != before {
		t.Fatalf("the rejected batches stored messages: last sequence %d → %d", before, after)
	}
}

// TestChangelogAdoptsLandedBatch: a commit whose batch landed but whose
// ack the owner never saw (a timeout) is adopted on retry: the same flush
// is not published twice, and a folded, newer flush goes on after it.
func TestChangelogAdoptsLandedBatch(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	var m model
	g := &flushGen{rng: rand.New(rand.NewPCG(3, 4))}
	w := f.writer(t, 2, 0, "owner")
	claim(t, w)
	if _, err := w.Commit(ctx, g.next(&m, 3, 100)); err != nil {
		t.Fatal(err)
	}
	lost := func() (restore func()) { // the writer's state before a commit whose ack is lost
		fence, last := w.fence, w.last
		return func() { w.fence, w.last = fence, last }
	}

	fl := g.next(&m, 8, 100)
	forget := lost()
	seq, err := w.Commit(ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	forget()
	before := f.lastSeq(t)
	again, err := w.Commit(ctx, fl)
	if err != nil || again != seq {
		t.Fatalf("retry of a landed flush: seq %d, %v; want the landed %d", again, err, seq)
	}
	if after := f.lastSeq(t); after != before {
		t.Fatalf("the retry published again: last sequence %d → %d", before, after)
	}

	// A newer flush folded into the retry: adopted, then published after it.
	forget = lost()
	if _, err := w.Commit(ctx, g.next(&m, 4, 100)); err != nil {
		t.Fatal(err)
	}
	forget()
	folded := g.next(&m, 6, 100)
	next, err := w.Commit(ctx, folded)
	if err != nil || next <= seq {
		t.Fatalf("folded retry: seq %d, %v", next, err)
	}
	r, at, _, err := w.lastRecord(ctx)
	if err != nil || at != next || r.Checkpoint.Position != folded.Checkpoint.Position || r.Epoch != 1 {
		t.Fatalf("last record %+v at %d, %v; want the folded flush at %d", r, at, err, next)
	}
}

// TestChangelogPaneTooLarge: a pane over the server's max_payload is
// refused before anything is published, with an error naming the limit.
func TestChangelogPaneTooLarge(t *testing.T) {
	f := newFixture(t, clustertest.Options{MaxPayload: 64 << 10})
	ctx := testContext(t, time.Minute)
	w := f.writer(t, 0, 0, "owner")
	claim(t, w)
	before := f.lastSeq(t)
	big := sketchd.PaneRecord{Key: sketchd.EncodeKey("de"), Start: 0, Applied: 1, Sketches: [][]byte{make([]byte, 100<<10)}}
	small := sketchd.PaneRecord{Key: sketchd.EncodeKey("fr"), Start: 0, Applied: 2, Sketches: [][]byte{make([]byte, 100)}}
	_, err := w.Commit(ctx, sketchd.Flush{Panes: []sketchd.PaneRecord{small, big}, Checkpoint: sketchd.Checkpoint{Position: 2}})
	if !errors.Is(err, ErrPaneTooLarge) || !strings.Contains(err.Error(), "max_payload is 65536") {
		t.Fatalf("err = %v, want ErrPaneTooLarge naming max_payload 65536", err)
	}
	if after := f.lastSeq(t); after != before {
		t.Fatalf("refused flush published: last sequence %d → %d", before, after)
	}
}

// TestChangelogPaneTTL: with a retention, each pane message carries its
// time to live (end + retention − now); the checkpoint record none.
func TestChangelogPaneTTL(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	f.spec.Retention = sketchd.Duration(time.Hour)
	ctx := testContext(t, time.Minute)
	w := f.writer(t, 0, 0, "owner")
	now := time.Now()
	w.now = func() time.Time { return now }
	claim(t, w)
	start := now.Truncate(time.Minute).Add(-time.Minute).UnixNano()
	p := sketchd.PaneRecord{Key: sketchd.EncodeKey("de"), Start: start, Applied: 1, Sketches: [][]byte{{1, 2, 3}}}
	if _, err := w.Commit(ctx, sketchd.Flush{Panes: []sketchd.PaneRecord{p}, Checkpoint: sketchd.Checkpoint{Position: 1}}); err != nil {
		t.Fatal(err)
	}
	msg, err := f.stream.GetLastMsgForSubject(ctx, f.cl.PaneSubject(0, p.Key, p.Start))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%ds", (start+int64(time.Minute+time.Hour)-now.UnixNano())/int64(time.Second))
	if got := msg.Header.Get(jetstream.MsgTTLHeader); got != want {
		t.Fatalf("pane TTL %q, want %q", got, want)
	}
	rec, err := f.stream.GetLastMsgForSubject(ctx, f.cl.CheckpointSubject(0))
	if err != nil || rec.Header.Get(jetstream.MsgTTLHeader) != "" {
		t.Fatalf("checkpoint record TTL %q, %v", rec.Header.Get(jetstream.MsgTTLHeader), err)
	}
}

func TestCheckPaneFits(t *testing.T) {
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "s", "events.s"
	spec.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url", TopK: 10},
		"latency": {Sketch: sketchd.KindTDigest, Field: "ms"},
		"sample":  {Sketch: sketchd.KindReservoir, Size: 32},
	}
	spec.Normalize()
	if err := CheckPaneFits(spec, 1<<20); err != nil {
		t.Fatalf("the default sketches must fit 1 MiB: %v", err)
	}
	err := CheckPaneFits(spec, 64<<10)
	if !errors.Is(err, ErrPaneTooLarge) || !strings.Contains(err.Error(), "max_payload is 64 KiB") {
		t.Fatalf("64 KiB: %v", err)
	}
}

// TestWrongLastSequenceBusy: nats-server answers a fence it cannot check
// because its subject is busy with "wrong last sequence" without a
// sequence (10164, not 10071); here the batch itself wrote the subject
// before the fenced message, which a real server refuses that way. The
// writer takes it as a failed fence (re-read, then retried or adopted),
// not as a failed commit: a clean-clone -race run of internal/cluster
// failed TestChangelogRestore on it ("partition 0 flush 2: ...
// err_code=10164 wrong last sequence"), a resent or previous batch still
// in process on a loaded machine.
func TestWrongLastSequenceBusy(t *testing.T) {
	f := newFixture(t, clustertest.Options{})
	nc := f.c.Connect(t, 0)
	subj := f.cl.CheckpointSubject(0)
	first := &nats.Msg{Subject: subj, Data: []byte("a"), Header: nats.Header{}}
	fenced := &nats.Msg{Subject: subj, Data: []byte("b"), Header: nats.Header{}}
	fenced.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	var err error
	for range 20 { // a just-started cluster may not answer yet
		if _, err = publishAtomic(testContext(t, 10*time.Second), nc, []*nats.Msg{first, fenced}, 2*time.Second); !unanswered(err) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeWrongLastSequenceBusy {
		t.Fatalf("batch writing its fenced subject twice: %v, want the server's error %d", err, errCodeWrongLastSequenceBusy)
	}
	if !isWrongLastSequence(err) || !wrongLastSequenceBusy(err) {
		t.Errorf("%v: not taken as a failed fence on a busy subject", err)
	}
	if plain := (&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}); !isWrongLastSequence(plain) || wrongLastSequenceBusy(plain) {
		t.Errorf("10071 misread")
	}
}
