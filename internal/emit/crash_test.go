package emit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/ingest"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// crashSpec is spec with a second target, out.<name>.final, published
// only when final.
func crashSpec() sketchd.Stream {
	s := spec("pv")
	s.Emit = append(s.Emit, sketchd.Emit{Subject: "out.pv.final", Trigger: sketchd.EmitOnFinal, Aggregates: []string{"users", "latency"}})
	s.Normalize()
	return s
}

// crashStore SIGKILLs the process at its Nth cursor write, before it
// writes: the messages of the batch are published and confirmed, the
// cursor says they are not — the moment a restart publishes again.
type crashStore struct {
	*store.DB
	at int64
	n  atomic.Int64
}

func (c *crashStore) SetEmitCursor(ctx context.Context, id uint32, subject string, cur store.EmitCursor) error {
	if c.n.Add(1) == c.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return c.DB.SetEmitCursor(ctx, id, subject, cur)
}

// TestEmitCrashChild is the child of TestEmitCrashLoop: ingest and emit
// against the parent's NATS until SIGTERM or SIGKILL.
func TestEmitCrashChild(t *testing.T) {
	url, dir := os.Getenv("SKETCHD_EMIT_CRASH_NATS"), os.Getenv("SKETCHD_EMIT_CRASH_DIR")
	if url == "" {
		t.Skip("child process of TestEmitCrashLoop")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, _, err := ingest.Connect(ingest.ConnOptions{URL: url}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	db, err := store.Open(dir, testLogger(t), nil, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // after the querier's Close (newQuerier)
	at, _ := strconv.ParseInt(os.Getenv("SKETCHD_EMIT_CRASH_AT"), 10, 64)
	mgr, err := ingest.NewManager(nc, nil, db, testLogger(t), ingest.Options{FlushInterval: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(ctx, []sketchd.Stream{crashSpec()}); err != nil {
		t.Fatal(err)
	}
	svc := New(mgr, newQuerier(t, db, query.Options{}), &crashStore{DB: db, at: at}, api.NewEmitRenderer(api.Limits{}),
		func() *nats.Conn { return nc }, testLogger(t), Options{Interval: 30 * time.Millisecond, BatchWindows: 2})
	svc.Run(ctx)
	if err := mgr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestEmitCrashLoop runs ingest and emit in a child process that SIGKILLs
// itself between a batch's confirmed publishes and its cursor write, or
// is killed at a random moment, restarts it, and checks that across the
// kills every final window was published exactly once per aggregate and
// group on both targets, none is missing, their exact event counts are
// the truth, and what a restart published again was dropped by the target
// stream under its Nats-Msg-Id.
func TestEmitCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 19))
	ns, err := ingest.StartServer(ingest.ServerOptions{Port: -1, StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var rawMu sync.Mutex
	raw := map[string]map[string]int{} // subject -> Nats-Msg-Id -> publishes seen
	if _, err := nc.Subscribe("out.>", func(m *nats.Msg) {
		rawMu.Lock()
		defer rawMu.Unlock()
		if raw[m.Subject] == nil {
			raw[m.Subject] = map[string]int{}
		}
		raw[m.Subject][m.Header.Get(jetstream.MsgIDHeader)]++
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp := crashSpec()
	child := func(at int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEmitCrashChild$")
		cmd.Env = append(os.Environ(), "SKETCHD_EMIT_CRASH_NATS="+ns.ClientURL(), "SKETCHD_EMIT_CRASH_DIR="+dir,
			"SKETCHD_EMIT_CRASH_AT="+strconv.Itoa(at))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// 300 s of events, 50 ms apart, from three countries.
	const n = 6000
	truth := map[string]float64{} // country/window start (unix ms) -> events
	evs := make([][]byte, n)
	for i := range evs {
		ts := base.Add(time.Duration(i) * 50 * time.Millisecond).UnixMilli()
		e := event{TS: ts, Country: []string{"DE", "FR", "US"}[rng.IntN(3)], User: fmt.Sprintf("u%d", rng.IntN(300)), MS: rng.ExpFloat64() * 100}
		truth[fmt.Sprintf("%s/%d", e.Country, ts-ts%int64(gran/time.Millisecond))]++
		evs[i], _ = json.Marshal(e)
	}
	cmd := child(0)
	// The first child creates the event stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := js.Stream(t.Context(), sp.JetStreamStream); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not create the event stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pubDone := make(chan error, 1)
	go func() {
		for i, b := range evs {
			if _, err := js.Publish(context.Background(), sp.Subject, b); err != nil {
				pubDone <- fmt.Errorf("event %d: %w", i, err)
				return
			}
			if i%10 == 0 {
				time.Sleep(30 * time.Millisecond)
			}
		}
		pubDone <- nil
	}()
	// Children alternate: one killed at a random moment, the next killing
	// itself at its Nth cursor write (or killed after 5 s).
	kills, selfKills := 0, 0
	for kills < 10 {
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		wait := time.Duration(300+rng.IntN(1500)) * time.Millisecond
		if kills%2 == 1 {
			wait = 5 * time.Second
		}
		select {
		case <-exited:
			selfKills++
		case <-time.After(wait):
			_ = cmd.Process.Kill()
			<-exited
		}
		kills++
		at := 0
		if kills%2 == 1 {
			at = 1 + rng.IntN(4)
		}
		cmd = child(at)
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	cmd = child(0)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	// An event far ahead makes every window of the 300 s final.
	last, _ := json.Marshal(event{TS: base.Add(400 * time.Second).UnixMilli(), Country: "DE", User: "u0"})
	if _, err := js.Publish(t.Context(), sp.Subject, last); err != nil {
		t.Fatal(err)
	}
	targets := map[string][]string{"out.pv": sp.AggregateNames(), "out.pv.final": {"latency", "users"}}
	deadline = time.Now().Add(60 * time.Second)
	for subject, aggs := range targets {
		for {
			finals, _, _ := emittedFinals(t, js, subject)
			if len(finals) >= len(truth)*len(aggs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d final windows published, want %d", subject, len(finals), len(truth)*len(aggs))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child after SIGTERM: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rawMu.Lock()
	defer rawMu.Unlock()
	replayed := 0
	for subject, aggs := range targets {
		finals, stored, ids := emittedFinals(t, js, subject)
		published := 0
		for _, k := range raw[subject] {
			published += k
		}
		if ids != stored || len(raw[subject]) != stored {
			t.Errorf("%s: the target stream holds %d messages of %d distinct ids; %d distinct ids were published", subject, stored, ids, len(raw[subject]))
		}
		for _, a := range aggs {
			for k, events := range truth {
				got := finals[a+"/"+k]
				switch {
				case len(got) == 0:
					t.Errorf("%s: final window %s of %s never published", subject, k, a)
				case len(got) > 1:
					t.Errorf("%s: final window %s of %s published %d times", subject, k, a, len(got))
				case got[0] != events:
					t.Errorf("%s: final window %s of %s has %v events, truth %v", subject, k, a, got[0], events)
				}
				delete(finals, a+"/"+k)
			}
		}
		for k := range finals {
			t.Errorf("%s: final message for %s, no such window", subject, k)
		}
		replayed += published - len(raw[subject])
		t.Logf("%s: %d publishes of %d distinct ids; the target stream kept %d (%d published again after kills, dropped by Nats-Msg-Id)",
			subject, published, len(raw[subject]), stored, published-len(raw[subject]))
	}
	t.Logf("%d kills (%d between confirmed publishes and the cursor write)", kills, selfKills)
	if selfKills > 0 && replayed == 0 {
		t.Error("children died between confirmed publishes and their cursor write, yet nothing was published again")
	}
}

// emittedFinals reads the target stream on subject: its final messages'
// event counts by aggregate/country/window start (unix ms), its message
// count and its distinct Nats-Msg-Id.
func emittedFinals(t *testing.T, js jetstream.JetStream, subject string) (map[string][]float64, int, int) {
	t.Helper()
	ctx := t.Context()
	name, err := js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return nil, 0, 0 // not created yet
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	finals := map[string][]float64{}
	ids := map[string]bool{}
	stored := 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != subject {
			continue
		}
		stored++
		ids[m.Header.Get(jetstream.MsgIDHeader)] = true
		var body struct {
			Aggregate string            `json:"aggregate"`
			Key       map[string]string `json:"key"`
			Start     time.Time         `json:"start"`
			Final     bool              `json:"final"`
			Events    float64           `json:"events"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatal(err)
		}
		if body.Final {
			k := fmt.Sprintf("%s/%s/%d", body.Aggregate, body.Key["country"], body.Start.UnixMilli())
			finals[k] = append(finals[k], body.Events)
		}
	}
	return finals, stored, len(ids)
}
