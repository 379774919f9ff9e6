package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eConfig: one JetStream and one core stream of events dated in the
// past (max_future is wide), finalized as soon as the watermark passes.
var e2eConfig = twoStreamConfig("e2e", "100ms", `
    granularity: 1m
    max_out_of_orderness: 1s
    allowed_lateness: 0s
    idle_timeout: 1s
    max_future: 876000h`)

// twoStreamConfig returns a config of two streams with the same settings
// (the YAML lines of stream) and the same four aggregates: "js" on JetStream
// (subject prefix.js) and "core" on core NATS (prefix.core).
func twoStreamConfig(prefix, flushInterval, stream string) string {
	return fmt.Sprintf(`
log_level: info
flush_interval: %[2]s
ack_wait: 5s
streams:
  - name: js
    subject: %[1]s.js
    jetstream: true
    time: {field: ts, format: unix_ms}
    group_by: [country]%[3]s
    aggregates: &aggs
      users:   {sketch: hll, field: user}
      urls:    {sketch: cms, field: url, top_k: 5}
      latency: {sketch: tdigest, field: ms}
      sample:  {sketch: reservoir, size: 10}
  - name: core
    subject: %[1]s.core
    jetstream: false
    time: {field: ts, format: unix_ms}
    group_by: [country]%[3]s
    aggregates: *aggs
`, prefix, flushInterval, stream)
}

// sketchdProc is the real binary running in a child process.
type sketchdProc struct {
	bin      string
	args     []string
	cmd      *exec.Cmd
	httpURL  string
	natsURL  string
	logLines chan string
}

func startSketchd(tb testing.TB, bin string, args ...string) *sketchdProc {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SKETCHD_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &sketchdProc{bin: bin, args: args, cmd: cmd, logLines: make(chan string, 1000)}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stderr)
	deadline := time.After(60 * time.Second)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for p.httpURL == "" || p.natsURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				tb.Fatal("sketchd exited during start")
			}
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) != nil {
				continue
			}
			switch m["msg"] {
			case "HTTP API listening":
				p.httpURL, _ = m["addr"].(string)
			case "embedded NATS listening":
				p.natsURL, _ = m["url"].(string)
			case "NATS connected": // an external NATS (--nats-url)
				if p.natsURL == "" {
					p.natsURL, _ = m["url"].(string)
				}
			}
			if m["level"] == "ERROR" {
				tb.Logf("sketchd: %s", l)
			}
		case <-deadline:
			tb.Fatal("sketchd did not start in 60s")
		}
	}
	go func() {
		for l := range lines {
			select {
			case p.logLines <- l:
			default:
			}
		}
	}()
	return p
}

func (p *sketchdProc) stop(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("sketchd exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		tb.Fatal("sketchd did not stop within 30s of SIGTERM")
	}
}

func getJSON(tb testing.TB, url string, out any) int {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("GET %s: %v: %s", url, err, b)
		}
	}
	if resp.StatusCode != http.StatusOK {
		tb.Logf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

type e2eEvent struct {
	TS      int64   `json:"ts"`
	Country string  `json:"country"`
	User    string  `json:"user"`
	URL     string  `json:"url"`
	MS      float64 `json:"ms"`
}

// TestEndToEnd builds the binary, runs it with a config file, publishes a
// known event set over JetStream and core NATS, checks every aggregate kind
// over HTTP against the truth, restarts it on the same data dir and checks
// the answers again.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	p := startWithConfig(t, dir, e2eConfig)
	nc, js := p.connect(t)
	rng := rand.New(rand.NewPCG(11, 12))
	// Recent times: older data would be dropped by retention (168h) at the restart.
	base := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Minute)
	const n = 5000
	var evs []e2eEvent
	users := map[string]bool{}
	urls := map[string]int{}
	var lat []float64
	for i := range n {
		e := e2eEvent{
			TS:      base.Add(time.Duration(i) * 20 * time.Millisecond).UnixMilli(),
			Country: []string{"DE", "FR"}[rng.IntN(2)],
			User:    fmt.Sprint("u", rng.IntN(3000)),
			URL:     fmt.Sprint("/p/", int(math.Floor(rng.ExpFloat64()*5))),
			MS:      math.Round(rng.ExpFloat64()*1000) / 10,
		}
		evs = append(evs, e)
		users[e.User] = true
		urls[e.URL]++
		lat = append(lat, e.MS)
	}
	slices.Sort(lat)
	ctx := context.Background()
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if _, err := js.Publish(ctx, "e2e.js", b); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("e2e.core", b); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	from, to := base.Add(-time.Minute).Format(time.RFC3339), base.Add(10*time.Minute).Format(time.RFC3339)
	q := func(stream, agg, extra string) string {
		return fmt.Sprintf("%s/v1/streams/%s/aggregates/%s?from=%s&to=%s%s", p.httpURL, stream, agg, from, to, extra)
	}
	// Wait until everything is committed. (The windows are not final yet:
	// the idle advance moves event time on at the rate of processing time
	// from the last event, so a pane of historical data becomes final only
	// after its remaining width has elapsed on the wall clock.)
	for _, stream := range []string{"js", "core"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var res struct {
				Groups []struct {
					Windows []struct {
						Final  bool   `json:"final"`
						Events uint64 `json:"events"`
					} `json:"windows"`
				} `json:"groups"`
			}
			if getJSON(t, q(stream, "users", ""), &res) == http.StatusOK && len(res.Groups) == 1 &&
				res.Groups[0].Windows[0].Events == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not all %d events committed and final in 30s: %+v", stream, n, res)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	answers := map[string]json.RawMessage{}
	for _, stream := range []string{"js", "core"} {
		check := func(agg, extra string, fn func(w map[string]any)) {
			var res struct {
				Groups []struct {
					Windows []map[string]any `json:"windows"`
				} `json:"groups"`
			}
			url := q(stream, agg, extra)
			if code := getJSON(t, url, &res); code != http.StatusOK {
				t.Fatalf("%s: status %d", url, code)
			}
			w := res.Groups[0].Windows[0]
			fn(w)
			delete(w, "final") // the idle advance may finalize the window between the two runs
			b, _ := json.Marshal(res.Groups)
			answers[url] = b
		}
		check("users", "", func(w map[string]any) {
			d := w["distinct"].(map[string]any)
			if got := float64(len(users)); got < d["lower"].(float64) || got > d["upper"].(float64) {
				t.Errorf("%s: distinct %v outside [%v, %v]", stream, got, d["lower"], d["upper"])
			}
		})
		check("urls", "&top=3&item=/p/0", func(w map[string]any) {
			top := w["top"].([]any)
			first := top[0].(map[string]any)
			if first["item"] != "/p/0" {
				t.Errorf("%s: top item %v, want /p/0", stream, first["item"])
			}
			est, bound := first["estimate"].(float64), w["error_bound"].(float64)
			if truth := float64(urls["/p/0"]); est < truth || est > truth+bound {
				t.Errorf("%s: /p/0 estimate %v, truth %v, bound %v", stream, est, truth, bound)
			}
		})
		check("latency", "&q=0.5,0.99", func(w map[string]any) {
			for _, qv := range w["quantiles"].([]any) {
				m := qv.(map[string]any)
				qq, v := m["q"].(float64), m["value"].(float64)
				rank := float64(sortSearch(lat, v)) / float64(len(lat))
				if math.Abs(rank-qq) > 0.01 {
					t.Errorf("%s: q%v = %v has rank %v", stream, qq, v, rank)
				}
			}
		})
		check("sample", "", func(w map[string]any) {
			if pop := w["population"].(float64); pop != n {
				t.Errorf("%s: population %v, want %d", stream, pop, n)
			}
			if s := w["sample"].([]any); len(s) != 10 {
				t.Errorf("%s: sample of %d, want 10", stream, len(s))
			}
		})
	}
	var metrics bytes.Buffer
	resp, err := http.Get(p.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&metrics, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sketchd_events_total{outcome="on_time",stream="js"} 5000`, `sketchd_watermark_timestamp_seconds{stream="core"}`, "sketchd_http_requests_total",
		"\nsketchd_memory_cache_scale 1\n", "\nsketchd_memory_resident_file_bytes ", `sketchd_query_cache_budget_bytes{cache="panes"}`,
		"\ngo_cpu_classes_gc_total_cpu_seconds_total ", "\ngo_cpu_classes_gc_mark_idle_cpu_seconds_total ", "\ngo_gc_heap_goal_bytes ", "\ngo_gc_heap_live_bytes "} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics.String(), "\nsketchd_memory_resident_file_bytes 0\n") {
		t.Error("the memory limiter saw no resident file pages (the binary's at least)")
	}

	// Restart on the same data dir: the same answers.
	p.stop(t)
	p2 := p.restart(t)
	for url, want := range answers {
		url = strings.Replace(url, p.httpURL, p2.httpURL, 1)
		var res struct {
			Groups []struct {
				Windows []map[string]any `json:"windows"`
			} `json:"groups"`
		}
		if code := getJSON(t, url, &res); code != http.StatusOK {
			t.Fatalf("after restart %s: %d", url, code)
		}
		delete(res.Groups[0].Windows[0], "final")
		got, _ := json.Marshal(res.Groups)
		if !jsonEqual(got, want) {
			t.Errorf("after restart %s:\n got %s\nwant %s", url, got, want)
		}
	}
	p2.stop(t)
}

func sortSearch(sorted []float64, v float64) int {
	i, _ := slices.BinarySearch(sorted, v)
	return i
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
