package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// soakDuration is how long TestSoak runs; the default suits CI.
//
//	go test ./cmd/sketchd -run TestSoak -soak=30m -timeout 40m -v
var soakDuration = flag.Duration("soak", 20*time.Second, "TestSoak: how long to run ingest and queries against the binary")

// soakConfig: one JetStream and one core stream of live events (now), with
// short lateness, so panes close, are flushed and leave memory: a steady
// state, not a growing one.
var soakConfig = twoStreamConfig("soak", "200ms", `
    granularity: 1s
    max_out_of_orderness: 1s
    allowed_lateness: 1s
    idle_timeout: 1s`)

// soakSample is one measurement of the process.
type soakSample struct {
	at         time.Duration
	goroutines float64
	heapInuse  float64 // bytes
	rss        float64 // bytes
}

// TestSoak runs the real binary under steady ingest (JetStream and core
// NATS) and a steady query rate, samples its goroutines and heap (from its
// /metrics) and its RSS (/proc), and checks that none trends upwards: after
// a warm-up, the second half's average stays within a generous bound of the
// first half's. The bounds catch leaks (a goroutine or a buffer per
// request, per message or per pane), not noise.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc for the RSS")
	}
	dur := *soakDuration
	dir := t.TempDir()
	// A small query cache: it fills during the warm-up, so that what grows
	// afterwards is a leak, not a cache reaching its size (256 MiB by
	// default, which a long soak would otherwise spend filling).
	p := startWithConfig(t, dir, soakConfig, "--query-cache-mb", "16")

	nc, js := p.connect(t, jetstream.WithPublishAsyncMaxPending(2000))

	ctx, cancel := context.WithTimeout(t.Context(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var published, pubErrors, queries, queryErrors atomic.Int64
	var firstQueryErr atomic.Value

	// Ingest: 50 events per transport every 50 ms (1000/s each).
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now().UnixMilli()
			for range 50 {
				b, _ := json.Marshal(e2eEvent{
					TS: now, Country: []string{"DE", "FR", "US", "BR"}[rng.IntN(4)],
					User: fmt.Sprint("u", rng.IntN(100_000)), URL: fmt.Sprint("/p/", rng.IntN(200)),
					MS: rng.ExpFloat64() * 100,
				})
				if _, err := js.PublishAsync("soak.js", b); err != nil {
					pubErrors.Add(1)
				}
				if err := nc.Publish("soak.core", b); err != nil {
					pubErrors.Add(1)
				}
				published.Add(2)
			}
			select { // bound the acks in flight
			case <-js.PublishAsyncComplete():
			case <-time.After(5 * time.Second):
				pubErrors.Add(1)
			case <-ctx.Done():
				return
			}
		}
	}()

	// Queries: 20 per second, cycling over kinds and shapes, over the last
	// soakQueryRange: a steady workload once that much data exists (the
	// default range, the last hour, would read more panes every second).
	const soakQueryRange = 10 * time.Second
	targets := []string{
		"/v1/streams/js/aggregates/users?group_by=country",
		"/v1/streams/core/aggregates/latency?q=0.5,0.99&step=2s",
		"/v1/streams/js/aggregates/urls?top=5&item=/p/1&where=country=DE",
		"/v1/streams/core/aggregates/sample?n=5",
		"/v1/streams/js/aggregates/users/sketch?x=1",
		"/v1/streams/core/keys?x=1",
		"/v1/streams/js/aggregates/latency?q=NaN", // a 400 every cycle
	}
	client := &http.Client{Timeout: 10 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			target := targets[i%len(targets)]
			target += "&from=" + strconv.FormatInt(time.Now().Add(-soakQueryRange).Unix(), 10)
			target = strings.Replace(target, "?x=1&", "?", 1)
			if i%8 == 7 {
				target = "/v1/streams/js" // no parameters
			}
			want := http.StatusOK
			if strings.Contains(target, "NaN") {
				want = http.StatusBadRequest
			}
			resp, err := client.Get(p.httpURL + target)
			if err != nil {
				if ctx.Err() == nil {
					queryErrors.Add(1)
					firstQueryErr.CompareAndSwap(nil, err.Error())
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			queries.Add(1)
			if resp.StatusCode != want {
				queryErrors.Add(1)
				firstQueryErr.CompareAndSwap(nil, fmt.Sprintf("%s: %d", target, resp.StatusCode))
			}
		}
	}()

	// Samples.
	interval := max(500*time.Millisecond, dur/200)
	var samples []soakSample
	start := time.Now()
	tick := time.NewTicker(interval)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			s, err := sampleProcess(client, p.httpURL, p.cmd.Process.Pid)
			if err != nil {
				t.Fatalf("sample: %v", err)
			}
			s.at = time.Since(start)
			samples = append(samples, s)
		}
	}
	tick.Stop()
	wg.Wait()

	// The work happened: events were ingested and queries answered.
	var st struct {
		Counters struct {
			OnTime uint64 `json:"on_time"`
		} `json:"counters"`
	}
	for _, stream := range []string{"js", "core"} {
		if code := getJSON(t, p.httpURL+"/v1/streams/"+stream, &st); code != 200 || st.Counters.OnTime == 0 {
			t.Errorf("stream %s: status %d, on_time %d: nothing ingested", stream, code, st.Counters.OnTime)
		}
		t.Logf("stream %s: %d events on time", stream, st.Counters.OnTime)
	}
	t.Logf("soak %s: published %d events (%d publish errors), %d queries (%d unexpected answers), %d samples every %s",
		dur, published.Load(), pubErrors.Load(), queries.Load(), queryErrors.Load(), len(samples), interval)
	if queryErrors.Load() > 0 {
		t.Errorf("%d queries failed or answered unexpectedly; first: %v", queryErrors.Load(), firstQueryErr.Load())
	}
	if pubErrors.Load() > 0 {
		t.Errorf("%d publish errors", pubErrors.Load())
	}

	// No upward trend after the warm-up: the first quarter, and at least
	// until the queries' range is full of data (plus the panes' lateness).
	warm := max(len(samples)/4, int((soakQueryRange+3*time.Second)/interval))
	rest := samples[warm:]
	if len(rest) < 8 {
		t.Fatalf("only %d samples after the warm-up", len(rest))
	}
	first, second := rest[:len(rest)/2], rest[len(rest)/2:]
	const mib = 1 << 20
	checks := []struct {
		name       string
		get        func(soakSample) float64
		unit       float64
		unitName   string
		factor     float64
		slack      float64 // in unit
		minCeiling float64
	}{
		{"goroutines", func(s soakSample) float64 { return s.goroutines }, 1, "", 1.25, 20, 0},
		{"heap in use", func(s soakSample) float64 { return s.heapInuse }, mib, " MiB", 1.5, 32, 0},
		{"RSS", func(s soakSample) float64 { return s.rss }, mib, " MiB", 1.5, 64, 0},
	}
	for _, c := range checks {
		a, b := avg(first, c.get)/c.unit, avg(second, c.get)/c.unit
		lo, hi := minMax(rest, c.get)
		bound := a*c.factor + c.slack
		t.Logf("%-11s first half %8.1f%s, second half %8.1f%s (bound %.1f%s; range after warm-up %.1f..%.1f%s)",
			c.name, a, c.unitName, b, c.unitName, bound, c.unitName, lo/c.unit, hi/c.unit, c.unitName)
		if b > bound {
			t.Errorf("%s grows: second half averages %.1f%s, first half %.1f%s (bound %.1f%s)", c.name, b, c.unitName, a, c.unitName, bound, c.unitName)
		}
	}
	p.stop(t)
}

func avg(s []soakSample, get func(soakSample) float64) float64 {
	var sum float64
	for _, x := range s {
		sum += get(x)
	}
	return sum / float64(len(s))
}

func minMax(s []soakSample, get func(soakSample) float64) (float64, float64) {
	lo, hi := get(s[0]), get(s[0])
	for _, x := range s {
		lo, hi = min(lo, get(x)), max(hi, get(x))
	}
	return lo, hi
}

// sampleProcess reads go_goroutines and go_memstats_heap_inuse_bytes from
// the process's /metrics and VmRSS from /proc/<pid>/status.
func sampleProcess(c *http.Client, base string, pid int) (soakSample, error) {
	var s soakSample
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_goroutines":
			dst = &s.goroutines
		case "go_memstats_heap_inuse_bytes":
			dst = &s.heapInuse
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(val, 64); err != nil {
			return s, fmt.Errorf("%s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if found != 2 {
		return s, fmt.Errorf("/metrics lacks go_goroutines or go_memstats_heap_inuse_bytes")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return s, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			s.rss = kb * 1024
			return s, nil
		}
	}
	return s, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
