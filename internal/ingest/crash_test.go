package ingest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/syncbuf"
	"github.com/sketchd/sketchd/sketch"
)

var (
	crashKills = flag.Int("crash.kills", 3, "random SIGKILLs in TestCrashLoop, after one at each kill point (raise for a longer run)")
	crashSeed  = flag.Uint64("crash.seed", 1, "seed of TestCrashLoop's random kill moments (logged; vary it to explore other moments)")
)

// Kill points: the child SIGKILLs itself at its Nth commit (SKETCHD_CRASH_AT
// = point:N), at the Store boundary or right after the ack.
var crashPoints = []string{
	"before-commit", // mid-flush: the snapshot is taken, nothing is written
	"mid-commit",    // the panes are durable, the checkpoint is not
	"after-commit",  // durable, not acked
	"after-ack",     // durable and acked (the ack reached the server)
	"mid-tier",      // a tier unit's panes are durable, its cursor is not
}

// crashStore kills the process at a commit, or at a write of a rollup
// tier's unit, as SKETCHD_CRASH_AT says.
type crashStore struct {
	*store.DB
	point string
	at    int
	n     atomic.Int64
	tiers atomic.Int64 // tier units written
}

func (c *crashStore) WriteTier(ctx context.Context, id uint32, tier time.Duration, panes []sketchd.PaneRecord, built int64) error {
	if c.point != "mid-tier" || len(panes) == 0 || c.tiers.Add(1) != int64(c.at) {
		return c.DB.WriteTier(ctx, id, tier, panes, built)
	}
	// What a crash inside WriteTier may leave: the panes, not the cursor.
	_ = c.DB.WriteTierPanes(ctx, id, tier, panes)
	killSelf()
	return nil
}

func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

func (c *crashStore) Commit(ctx context.Context, id uint32, f sketchd.Flush) error {
	if c.n.Add(1) != int64(c.at) || c.point == "mid-tier" {
		return c.DB.Commit(ctx, id, f)
	}
	switch c.point {
	case "before-commit":
		killSelf()
	case "mid-commit":
		// What a crash inside Commit may leave: the panes, under the
		// previous checkpoint.
		// (If that fails, die anyway: a kill is due here either way.)
		if cp, _, err := c.DB.Checkpoint(ctx, id); err == nil {
			_ = c.DB.Commit(ctx, id, sketchd.Flush{Panes: f.Panes, Checkpoint: cp})
		}
		killSelf()
	case "after-commit":
		_ = c.DB.Commit(ctx, id, f)
		killSelf()
	}
	return c.DB.Commit(ctx, id, f)
}

// TestCrashChild is the child of TestCrashLoop: it runs the real ingest
// against the parent's NATS until SIGTERM (clean stop) or SIGKILL.
func TestCrashChild(t *testing.T) {
	url, dir := os.Getenv("SKETCHD_CRASH_NATS"), os.Getenv("SKETCHD_CRASH_DIR")
	if url == "" {
		t.Skip("child process of TestCrashLoop")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc := connect(t, url)
	db, err := store.Open(dir, testLogger(t), nil, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{FlushInterval: 30 * time.Millisecond}
	var st Store = db
	if at := os.Getenv("SKETCHD_CRASH_AT"); at != "" {
		point, n, _ := strings.Cut(at, ":")
		k, err := strconv.Atoi(n)
		if err != nil {
			t.Fatal(err)
		}
		st = &crashStore{DB: db, point: point, at: k}
		if point == "after-ack" {
			var acks atomic.Int64
			opts.afterAck = func() {
				if acks.Add(1) == int64(k) {
					_ = nc.Flush() // the ack reached the server
					killSelf()
				}
			}
		}
	}
	m := newManager(t, nc, st, opts)
	if err := m.Start(context.Background(), []sketchd.Stream{crashSpec()}); err != nil {
		t.Fatal(err)
	}
	fmt.Println(crashChildStarted) // SIGTERM is handled from here on
	<-ctx.Done()
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// crashSpec is a stream of 1s panes with rollup tiers of 5s and 30s, so
// that the kills also hit the tier builder, with a theta and a ddsketch
// aggregate too: every kind's replayed panes (and tier panes) must equal
// the uninterrupted run's, byte for byte.
func crashSpec() sketchd.Stream {
	s := pageviews("crash", true)
	s.Granularity = sketchd.Duration(time.Second)
	s.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(5 * time.Second)}, {Granularity: sketchd.Duration(30 * time.Second)}}
	s.Aggregates["visitors"] = sketchd.Aggregate{Sketch: sketchd.KindTheta, Field: "user", NominalEntries: 64}
	s.Aggregates["p99"] = sketchd.Aggregate{Sketch: sketchd.KindDDSketch, Field: "ms"}
	s.Normalize()
	return s
}

// crashChildStarted is what the child prints once it handles SIGTERM.
const crashChildStarted = "sketchd-crash-child: started"

// crashMessages splits events into messages of 1 to 3 newline-delimited
// events, deterministically.
func crashMessages(evs []event) [][]byte {
	rng := rand.New(rand.NewPCG(9, 9))
	var msgs [][]byte
	for i := 0; i < len(evs); {
		n := 1 + rng.IntN(3)
		var b []byte
		for j := i; j < min(i+n, len(evs)); j++ {
			b = append(append(b, evs[j].json()...), '\n')
		}
		msgs = append(msgs, b)
		i += n
	}
	return msgs
}

// TestCrashLoop kills the ingesting process with SIGKILL while events are
// published to JetStream: once at each kill point (mid-flush, mid-commit,
// after the commit before the ack, after the ack), then at random moments;
// it restarts it each time, and then checks every pane against an
// uninterrupted run: exact counts equal (zero lost, zero doubled) and
// sketches equal.
//
//	go test -race ./internal/ingest -run TestCrashLoop -v [-crash.kills=20] [-crash.seed=N]
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	evs := genEvents(42, 12000)
	msgs := crashMessages(evs)
	spec := crashSpec()
	ctx := context.Background()

	// The reference: one uninterrupted run.
	refDB := func() *store.DB {
		ns := runNATS(t)
		nc := connect(t, ns.ClientURL())
		db := openStore(t, t.TempDir())
		m := newManager(t, nc, db, Options{})
		if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		for i, b := range msgs {
			if _, err := js.Publish(ctx, spec.Subject, b, jetstream.WithMsgID(fmt.Sprint("m", i))); err != nil {
				t.Fatal(err)
			}
		}
		waitConsumed(t, js, spec, len(msgs))
		if err := m.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		return db
	}()

	// The crashing run: NATS lives here; the ingest runs in a child.
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	dir := t.TempDir()
	var lastOut *syncbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() && lastOut != nil {
			t.Logf("last child's output:\n%s", tail(lastOut.String(), 200))
		}
	})
	start := func(env ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "SKETCHD_CRASH_NATS="+ns.ClientURL(), "SKETCHD_CRASH_DIR="+dir)
		cmd.Env = append(cmd.Env, env...)
		cmd.Env = append(cmd.Env, "SKETCHD_TEST_LOG=1")
		out := &syncbuf.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lastOut = out
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd
	}
	publish := func(from, to int, pace bool) {
		for i := from; i < to; i++ {
			for {
				_, err := js.Publish(ctx, spec.Subject, msgs[i], jetstream.WithMsgID(fmt.Sprint("m", i)))
				if err == nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if pace && i%200 == 0 {
				time.Sleep(15 * time.Millisecond) // spread the publishing over the kills
			}
		}
	}
	// Deterministic kills: one at each kill point, at the child's second
	// commit (or ack), with fresh messages to commit.
	chunk := len(msgs) / 10
	next := 0
	for _, point := range crashPoints {
		// The tier builder writes a pass's units at once (up to 12 tier
		// panes), so a child may write only one unit per chunk: kill at
		// its first.
		at := ":2"
		if point == "mid-tier" {
			at = ":1"
		}
		cmd := start("SKETCHD_CRASH_AT=" + point + at)
		// Paced, so that the chunk spans several flushes: a chunk consumed
		// in one commit (and one ack: commits without new messages do not
		// ack) would never reach the second.
		publish(next, next+chunk, true)
		next += chunk
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// A child that started after the whole chunk was published (a
		// loaded machine) may commit it at once, and then has no fresh
		// messages for its second commit: feed it a few more until it dies.
		more := time.NewTicker(2 * time.Second)
		deadline := time.After(60 * time.Second)
	wait:
		for {
			select {
			case err := <-exited:
				ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
				if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("child at kill point %s: exit %v, want killed by SIGKILL", point, err)
				}
				break wait
			case <-more.C:
				if extra := min(next+20, len(msgs)); extra > next {
					publish(next, extra, false)
					next = extra
				}
			case <-deadline:
				// Reap it here: the cleanup must not Wait a second time.
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("the child did not reach kill point %s", point)
			}
		}
		more.Stop()
		t.Logf("killed at %s", point)
	}
	// Random kills while the rest is published.
	pubDone := make(chan error, 1)
	go func() {
		publish(next, len(msgs), true)
		pubDone <- nil
	}()
	// The seed fixes the kill delays; the moments they hit still depend on
	// scheduling, so a failure may need a few runs with its seed to recur.
	t.Logf("random kills: -crash.seed=%d", *crashSeed)
	rng := rand.New(rand.NewPCG(*crashSeed, 1))
	for k := range *crashKills {
		cmd := start()
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("random kill %d done", k+1)
	}
	<-pubDone
	cmd := start()
	// The last child may have nothing left to do: wait until it handles
	// SIGTERM before sending it.
	out := lastOut
	waitFor(t, 60*time.Second, "the last child started", func() (bool, string) {
		return strings.Contains(out.String(), crashChildStarted), "not yet"
	})
	waitConsumed(t, js, spec, len(msgs))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exit after SIGTERM: %v", err)
	}

	db := openStore(t, dir)
	info, err := db.Stream(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	refInfo, err := refDB.Stream(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	got, want := allPanes(t, db, info.ID), allPanes(t, refDB, refInfo.ID)
	var total, lost, doubled uint64
	for k, w := range want {
		g := got[k]
		total += g.Events
		switch {
		case g.Events < w.Events:
			lost += w.Events - g.Events
		case g.Events > w.Events:
			doubled += g.Events - w.Events
		}
		if g.Events == w.Events {
			for i := range w.Sketches {
				if !sameSketch(t, g.Sketches[i], w.Sketches[i]) {
					t.Errorf("pane %q@%d: aggregate %d differs from the uninterrupted run", k.key, k.start, i)
				}
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d panes, uninterrupted run has %d", len(got), len(want))
	}
	t.Logf("kills=%d (one at each of %v, %d random) events=%d panes=%d lost=%d doubled=%d",
		len(crashPoints)+*crashKills, crashPoints, *crashKills, total, len(got), lost, doubled)
	if lost != 0 || doubled != 0 || total != uint64(len(evs)) {
		t.Fatalf("lost %d, doubled %d, total %d of %d", lost, doubled, total, len(evs))
	}
	checkCrashTiers(t, nc, db, spec, evs)
}

// checkCrashTiers lets the tier builder finish what the kills left (a
// restart resumes from the stored cursors), then checks every tier pane
// against its recomputation from its source panes: a unit merged twice or
// a pane lost would differ.
func checkCrashTiers(t *testing.T, nc *nats.Conn, db *store.DB, spec sketchd.Stream, evs []event) {
	t.Helper()
	ctx := context.Background()
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	// Final up to the last event - out-of-orderness - allowed lateness.
	lastFinal := time.UnixMilli(evs[len(evs)-1].TS).Add(-spec.MaxOutOfOrderness.Std() - spec.AllowedLateness.Std()).UnixNano()
	want := sketchd.PaneStart(lastFinal, int64(spec.Rollups[1].Granularity))
	waitFor(t, 30*time.Second, "tiers built", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		return len(st.Rollups) == 2 && st.Rollups[1].BuiltTo >= want, fmt.Sprintf("%+v, want %d", st.Rollups, want)
	})
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := db.Stream(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	cursors, events := checkTiers(t, db, info)
	t.Logf("tiers: cursors %v, events %v", cursors, events)
	for i, c := range cursors {
		var n uint64
		for _, e := range evs {
			if time.UnixMilli(e.TS).UnixNano() < c {
				n++
			}
		}
		if events[i] != n {
			t.Errorf("tier %s holds %d events before its cursor, %d were published", spec.Rollups[i].Granularity, events[i], n)
		}
	}
}

// tail returns the last n lines of out, without debug lines.
func tail(out string, n int) string {
	var lines []string
	for _, ln := range strings.Split(out, "\n") {
		if !strings.Contains(ln, "level=DEBUG") {
			lines = append(lines, ln)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

type pk struct {
	key   string
	start int64
}

func allPanes(tb testing.TB, db *store.DB, id uint32) map[pk]sketchd.PaneRecord {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	if err := db.Keys(ctx, id, -1<<62, 1<<62, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		tb.Fatal(err)
	}
	out := map[pk]sketchd.PaneRecord{}
	err := db.ScanPanes(ctx, id, keys, -1<<62, 1<<62, func(r sketchd.PaneRecord) error {
		out[pk{r.Key, r.Start}] = r
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// sameSketch compares two encoded sketches: by registers and count for
// HLL (its encoding is not canonical: sketch.HLL.Registers), by bytes
// otherwise.
func sameSketch(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	sa, err := sketch.Decode(a)
	if err != nil {
		tb.Fatal(err)
	}
	sb, err := sketch.Decode(b)
	if err != nil {
		tb.Fatal(err)
	}
	if ha, ok := sa.(*sketch.HLL); ok {
		hb, ok := sb.(*sketch.HLL)
		return ok && ha.Count() == hb.Count() && bytes.Equal(ha.Registers(), hb.Registers())
	}
	ea, _ := sa.AppendBinary(nil)
	eb, _ := sb.AppendBinary(nil)
	return string(ea) == string(eb)
}

// waitConsumed waits until the stream's consumer has acked n messages.
func waitConsumed(tb testing.TB, js jetstream.JetStream, spec sketchd.Stream, n int) {
	tb.Helper()
	waitFor(tb, 60*time.Second, "consumer caught up", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := durableOf(ctx, js, spec)
		if err != nil {
			return false, err.Error()
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return ci.AckFloor.Stream >= uint64(n) && ci.NumPending == 0 && ci.NumAckPending == 0,
			fmt.Sprintf("ack floor %d of %d, pending %d, ack pending %d", ci.AckFloor.Stream, n, ci.NumPending, ci.NumAckPending)
	})
}
