package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/ingest"
)

// emitCrashConfig: one JetStream stream of 1 s panes, pushed in 5 s windows
// to two targets: out.final (once, when final) and out.close (at close,
// updates, final).
const emitCrashConfig = `
log_level: info
flush_interval: 100ms
ack_wait: 5s
nats_url: %s
streams:
  - name: pv
    subject: events.pv
    time: {field: ts, format: unix_ms}
    group_by: [country]
    granularity: 1s
    max_out_of_orderness: 0s
    allowed_lateness: 1s
    idle_timeout: 0s
    max_future: 876000h
    retention: 876000h
    aggregates:
      users: {sketch: hll, field: user}
    emit:
      - {subject: out.final, window: 5s, trigger: final}
      - {subject: out.close, window: 5s}
`

// TestEmitCrashLoop kills the binary with SIGKILL at random moments while
// events flow and windows are pushed, restarts it on the same data dir,
// and checks that across the kills every final window was published
// exactly once per group on each target (the target streams' duplicate
// window drops what a restart publishes again under the same Nats-Msg-Id),
// that none is missing, and that their exact event counts are the truth.
func TestEmitCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop: builds and kills the binary")
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

	// Every publish, duplicates included, as a core subscriber sees it.
	var rawMu sync.Mutex
	raw := map[string]map[string]int{} // subject -> Nats-Msg-Id -> publishes
	sub, err := nc.Subscribe("out.>", func(m *nats.Msg) {
		rawMu.Lock()
		defer rawMu.Unlock()
		if raw[m.Subject] == nil {
			raw[m.Subject] = map[string]int{}
		}
		raw[m.Subject][m.Header.Get(jetstream.MsgIDHeader)]++
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sketchd.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, emitCrashConfig, ns.ClientURL()), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	args := []string{"--config", cfgFile, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0"}

	// Events: 50 ms of event time apart, 300 s in all, published while
	// the binary is killed and restarted.
	const n = 6000
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-14 * time.Hour)
	truth := map[string]map[int64]float64{} // country -> window start (unix ms) -> events
	evs := make([][]byte, n)
	for i := range evs {
		ts := base.Add(time.Duration(i) * 50 * time.Millisecond).UnixMilli()
		c := []string{"DE", "FR", "US"}[rng.IntN(3)]
		if truth[c] == nil {
			truth[c] = map[int64]float64{}
		}
		truth[c][ts-ts%5000]++
		evs[i], _ = json.Marshal(map[string]any{"ts": ts, "country": c, "user": fmt.Sprintf("u%d", rng.IntN(500))})
	}

	p := startEmitChild(t, bin, args)
	var wg sync.WaitGroup
	pubErr := make(chan error, 1)
	wg.Go(func() {
		for i, b := range evs {
			if err := publishOnce(js, "events.pv", b, fmt.Sprint(i)); err != nil {
				pubErr <- fmt.Errorf("event %d: %w", i, err)
				return
			}
			if i%5 == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	kills := 0
	for kills < 8 {
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		kills++
		p = startEmitChild(t, bin, args)
	}
	wg.Wait()
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	// An event far ahead makes every window of the 300 s final.
	last, _ := json.Marshal(map[string]any{"ts": base.Add(400 * time.Second).UnixMilli(), "country": "DE", "user": "u0"})
	if _, err := js.Publish(context.Background(), "events.pv", last); err != nil {
		t.Fatal(err)
	}
	want := base.Add(300 * time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct {
			Emit []struct {
				Subject string  `json:"subject"`
				FinalTo *string `json:"final_to"`
				Error   string  `json:"error"`
			} `json:"emit"`
		}
		done := getJSON(t, p.httpURL+"/v1/streams/pv", &st) == 200 && len(st.Emit) == 2
		for _, e := range st.Emit {
			ft := time.Time{}
			if e.FinalTo != nil {
				ft, _ = time.Parse(time.RFC3339Nano, *e.FinalTo)
			}
			done = done && !ft.Before(want)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emit did not publish up to %s: %+v", want, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop(t)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rawMu.Lock()
	defer rawMu.Unlock()

	for _, subject := range []string{"out.final", "out.close"} {
		finals, all, ids := readEmitted(t, js, subject)
		if ids != all {
			t.Errorf("%s: %d messages but %d distinct Nats-Msg-Id", subject, all, ids)
		}
		published := 0
		for _, k := range raw[subject] {
			published += k
		}
		if len(raw[subject]) != ids {
			t.Errorf("%s: %d distinct ids published, the target stream kept %d", subject, len(raw[subject]), ids)
		}
		missing, wrong := 0, 0
		for c, wins := range truth {
			for start, events := range wins {
				k := fmt.Sprintf("%s/%d", c, start)
				got, ok := finals[k]
				switch {
				case !ok:
					missing++
				case len(got) != 1:
					t.Errorf("%s: window %s published final %d times", subject, k, len(got))
				case got[0] != events:
					wrong++
					t.Errorf("%s: window %s final with %v events, truth %v", subject, k, got[0], events)
				}
				delete(finals, k)
			}
		}
		for k := range finals {
			t.Errorf("%s: final message for %s, a window without events", subject, k)
		}
		if missing > 0 {
			t.Errorf("%s: %d final windows never published", subject, missing)
		}
		t.Logf("%s: %d kills; %d publishes of %d distinct ids, the target stream kept %d messages (%d published again after a kill, dropped by Nats-Msg-Id)",
			subject, kills, published, len(raw[subject]), all, published-len(raw[subject]))
	}
}

// readEmitted reads a target stream: the final messages' event counts by
// group and window start (unix ms), the number of messages, and of
// distinct Nats-Msg-Id.
func readEmitted(t *testing.T, js jetstream.JetStream, subject string) (map[string][]float64, int, int) {
	t.Helper()
	ctx := t.Context()
	name, err := js.StreamNameBySubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
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
	all := 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		all++
		ids[m.Header.Get(jetstream.MsgIDHeader)] = true
		var body struct {
			Key    map[string]string `json:"key"`
			Start  time.Time         `json:"start"`
			Final  bool              `json:"final"`
			Events float64           `json:"events"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatal(err)
		}
		if body.Final {
			k := fmt.Sprintf("%s/%d", body.Key["country"], body.Start.UnixMilli())
			finals[k] = append(finals[k], body.Events)
		}
	}
	return finals, all, len(ids)
}

// startEmitChild starts the binary (external NATS) and waits for its HTTP
// address.
func startEmitChild(t *testing.T, bin string, args []string) *sketchdProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SKETCHD_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &sketchdProc{cmd: cmd, logLines: make(chan string, 1000)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m["msg"] == "HTTP API listening" {
				a, _ := m["addr"].(string)
				addr <- a
			}
			if m["level"] == "ERROR" {
				fmt.Fprintln(os.Stderr, "sketchd:", sc.Text()) // not t.Logf: this goroutine may outlive the test
			}
		}
	}()
	select {
	case p.httpURL = <-addr:
	case <-time.After(60 * time.Second):
		t.Fatal("sketchd did not start in 60s")
	}
	return p
}

// publishOnce publishes b under the message id id, again when the ack does
// not come within 5 s (a loaded machine can delay one past nats.go's
// default timeout while the publish itself landed: the stream's duplicate
// window drops the second copy), for at most a minute.
func publishOnce(js jetstream.JetStream, subject string, b []byte, id string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.Publish(ctx, subject, b, jetstream.WithMsgID(id))
		cancel()
		if err == nil || time.Now().After(deadline) ||
			!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse)) {
			return err
		}
	}
}
