package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// t0 is the first whole second of the synthetic phases.
var t0 = time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)

// scrapes returns one sample just after each of the seconds t0+0 .. t0+n
// (n+1 samples), with compaction bytes written in second i given by
// comp[i] (MiB), commits 0.5 MiB, one GC cycle and 0.25 CPU s per second;
// skip leaves out the scrapes at those seconds (they failed).
func scrapes(comp []int64, skip ...int) []StoreSample {
	var out []StoreSample
	c := StoreSample{Alloc: 1 << 30, GCCPU: 1, GCIdle: 0.5, HeapLive: 200 << 20, HeapGoal: 330 << 20, HeapSlack: 40 << 20}
	for i := 0; i <= len(comp); i++ {
		c.At = t0.Add(time.Duration(i)*time.Second + 12*time.Millisecond)
		if !slices.Contains(skip, i) {
			out = append(out, c)
		}
		if i < len(comp) {
			c.Compaction += comp[i] << 20
			c.Commit += 1 << 19
			c.GCCycles++
			c.CPU += 0.25
			c.Alloc += 50 << 20
			c.GCCPU += 0.05
			c.GCIdle += 0.02
			c.HeapLive += 1 << 20
			c.HeapGoal += 2 << 20
			c.HeapSlack += 3 << 20
			c.Tables = comp[i] // tables in running compactions at the next scrape
		}
	}
	return out
}

// requests returns 100 requests in each second i, spread over it, of
// which the last 5 take slow[i] ms (so the second's p99 is slow[i]) and
// the rest 1 ms; the first bad[i] of them failed.
func requests(slow []float64, bad []int) []request {
	var out []request
	for i, s := range slow {
		for j := range 100 {
			r := request{At: t0.Add(time.Duration(i)*time.Second + time.Duration(j)*10*time.Millisecond), Latency: time.Millisecond}
			if j >= 95 {
				r.Latency = time.Duration(s * float64(time.Millisecond))
			}
			r.Bad = j < bad[i]
			out = append(out, r)
		}
	}
	return out
}

// TestBuildTimeline: the scrapes' differences land in the right seconds,
// failed scrapes and counters that went back leave seconds without store
// figures, and the split pools the requests of the compacting seconds
// against the quiet ones.
func TestBuildTimeline(t *testing.T) {
	tests := []struct {
		name      string
		comp      []int64 // MiB compactions wrote in each second
		skip      []int   // scrapes that failed
		reset     bool    // the scrape at 2 s reads 0 compaction bytes
		slow      []float64
		bad       []int
		latencies bool
		// per second from t0: store figures present, compaction MiB
		wantStore []bool
		wantComp  []int64
		wantSplit *CompactionSplit
		// the split by compactions running or finished
		wantRunning *CompactionSplit
	}{{
		name:      "compactions in the slow seconds",
		comp:      []int64{0, 5, 8, 0, 0},
		slow:      []float64{1, 40, 98, 1, 1},
		bad:       []int{0, 2, 0, 0, 0},
		latencies: true,
		wantStore: []bool{true, true, true, true, true},
		wantComp:  []int64{0, 5, 8, 0, 0},
		// 200 requests, 5 at 40 ms and 5 at 98 ms: the 198th is 98 ms.
		wantSplit: &CompactionSplit{Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 98},
			Quiet: SplitSide{Seconds: 3, Requests: 300, P99: 1}},
		// 3 s: at the scrape ending 2 s the 8 MiB compaction's tables still show
		wantRunning: &CompactionSplit{Compacting: SplitSide{Seconds: 3, Requests: 300, P99: 98},
			Quiet: SplitSide{Seconds: 2, Requests: 200, P99: 1}},
	}, {
		name:      "exactly 1 MiB is not compacting",
		comp:      []int64{1, 2},
		slow:      []float64{30, 1},
		bad:       []int{0, 0},
		latencies: true,
		wantStore: []bool{true, true},
		wantComp:  []int64{1, 2},
		wantSplit: &CompactionSplit{Compacting: SplitSide{Seconds: 1, Requests: 100, P99: 1},
			Quiet: SplitSide{Seconds: 1, Requests: 100, P99: 30}},
		wantRunning: &CompactionSplit{Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 30}},
	}, {
		name:        "a failed scrape skips the seconds on both sides",
		comp:        []int64{3, 3, 3, 3},
		skip:        []int{2},
		slow:        []float64{1, 50, 50, 1},
		bad:         []int{0, 0, 0, 0},
		latencies:   true,
		wantStore:   []bool{true, false, false, true},
		wantComp:    []int64{3, 0, 0, 3},
		wantSplit:   &CompactionSplit{Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 1}, Unsampled: 2},
		wantRunning: &CompactionSplit{Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 1}, Unsampled: 2},
	}, {
		name:        "a counter that went back (restart) is no figure",
		comp:        []int64{2, 2, 2},
		reset:       true,
		slow:        []float64{1, 1, 1},
		bad:         []int{0, 0, 0},
		latencies:   true,
		wantStore:   []bool{true, false, true},
		wantComp:    []int64{2, 0, 6}, // from 0 after the reset to 6 MiB
		wantSplit:   &CompactionSplit{Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 1}, Unsampled: 1},
		wantRunning: &CompactionSplit{Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 1}, Unsampled: 1},
	}, {
		name:      "no latencies (k6): store seconds only, no split",
		comp:      []int64{0, 4},
		wantStore: []bool{true, true},
		wantComp:  []int64{0, 4},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			samples := scrapes(tc.comp, tc.skip...)
			if tc.reset {
				samples[2].Compaction = 0
			}
			var reqs []request
			if tc.slow != nil {
				reqs = requests(tc.slow, tc.bad)
			}
			tl := BuildTimeline(samples, len(tc.skip), reqs, tc.latencies)
			if len(tl.Seconds) != len(tc.wantStore) {
				t.Fatalf("%d seconds, want %d: %+v", len(tl.Seconds), len(tc.wantStore), tl.Seconds)
			}
			for i, s := range tl.Seconds {
				if want := t0.Add(time.Duration(i) * time.Second); !s.At.Equal(want) {
					t.Errorf("second %d at %s, want %s", i, s.At, want)
				}
				if s.Store != tc.wantStore[i] || s.CompactionBytes != tc.wantComp[i]<<20 {
					t.Errorf("second %d: store %v, compactions %d B; want %v, %d MiB", i, s.Store, s.CompactionBytes, tc.wantStore[i], tc.wantComp[i])
				}
				if s.Store && (s.CommitBytes != 1<<19 || s.GCCycles != 1 || s.CPU != 0.25 || s.Tables != max(tc.comp[i], prevComp(tc.comp, i))) {
					t.Errorf("second %d: commits %d B, GC %d, CPU %.2f, tables %d", i, s.CommitBytes, s.GCCycles, s.CPU, s.Tables)
				}
				if reqs != nil && (s.Requests != 100 || s.Errors != tc.bad[i] || s.P99 != tc.slow[i]) {
					t.Errorf("second %d: %d requests, %d errors, p99 %.2f; want 100, %d, %.2f", i, s.Requests, s.Errors, s.P99, tc.bad[i], tc.slow[i])
				}
			}
			if tl.Failed != len(tc.skip) || len(tl.Samples) != len(samples) {
				t.Errorf("%d samples, %d failed kept; want %d, %d", len(tl.Samples), tl.Failed, len(samples), len(tc.skip))
			}
			checkSplit(t, "split", tl.Split, tc.wantSplit)
			checkSplit(t, "split by running compactions", tl.SplitRunning, tc.wantRunning)
		})
	}
}

func checkSplit(t *testing.T, name string, got, want *CompactionSplit) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s %+v, want none", name, *got)
	case want != nil && (got == nil || *got != *want):
		t.Errorf("%s %+v, want %+v", name, got, *want)
	}
}

// prevComp is the compaction tables at the scrape before second i (the
// fixture sets the tables to the MiB of the second before).
func prevComp(comp []int64, i int) int64 {
	if i == 0 {
		return 0
	}
	return comp[i-1]
}

// TestBuildTimelineRequests: per-second p50, p99, max and errors, and
// the slowest seconds in order.
func TestBuildTimelineRequests(t *testing.T) {
	tl := BuildTimeline(scrapes([]int64{0, 0, 0}), 0, requests([]float64{1, 98, 1}, []int{0, 3, 0}), true)
	got := tl.Seconds[1]
	if got.Requests != 100 || got.Errors != 3 || got.P50 != 1 || got.P99 != 98 || got.Max != 98 {
		t.Errorf("second 1: %+v, want 100 requests, 3 errors, p50 1, p99 98, max 98", got)
	}
	top := slowestSeconds(tl.Seconds, 2)
	if len(top) != 2 || !top[0].At.Equal(t0.Add(time.Second)) || !top[1].At.Equal(t0) {
		t.Errorf("slowest seconds %+v, want 1 s then 0 s (the earlier of equals)", top)
	}
}

// TestRenderTimeline: the section lists the slowest seconds with their
// store figures and the split line; a phase without latencies gets a
// summary; results without timelines (older runners) get no section.
func TestRenderTimeline(t *testing.T) {
	r := fixture()
	if md := RenderMarkdown(r); strings.Contains(md, "Second by second") {
		t.Error("section rendered without timelines")
	}
	r.Vegeta.Timeline = BuildTimeline(scrapes([]int64{0, 5, 8, 0, 0, 0, 0}, 6),
		1, requests([]float64{1, 40, 98, 1, 2, 3, 4}, []int{0, 2, 0, 0, 0, 0, 0}), true)
	r.K6.Timeline = BuildTimeline(scrapes([]int64{0, 4, 0}), 0, nil, false)
	md := RenderMarkdown(r)
	for _, want := range []string{
		"### Second by second: compactions and the latency tail",
		"vegeta at 1,000 req/s for 30s: 7 scrapes, 1 failed; 5 seconds with store figures.",
		"| 21:00:02 | 100 | 0 | 1.00 ms | 98.00 ms | 8.0 MiB | 0.5 MiB | 1 | 0.25 s | 8 |",
		"| 21:00:01 | 100 | 2 | 1.00 ms | 40.00 ms | 5.0 MiB | 0.5 MiB | 1 | 0.25 s | 5 |",
		"| 21:00:06 | 100 | 0 | 1.00 ms | 4.00 ms | – | – | – | – | – |",
		"Seconds in which compactions wrote more than 1.0 MiB: p99 98.00 ms over 200 requests in 2 s; " +
			"the other seconds: p99 2.00 ms over 300 requests in 3 s; 2 s with requests but no store figures left out.",
		"Seconds in which a compaction ran (compaction tables > 0 at either scrape) or finished: p99 98.00 ms over 300 requests in 3 s; " +
			"the other seconds: p99 2.00 ms over 200 requests in 2 s; 2 s with requests but no store figures left out.",
		fmt.Sprintf("sketchd allocated 350.0 MiB in the 7 s between the first and the last scrape (50.0 MiB/s, %.1f KB per request of the phase, ingestion's allocations included) and its GC ran 7 cycles, one per 50.0 MiB allocated", float64(350<<20)/float64(r.Vegeta.All.Requests)/1e3),
		"The runtime puts its collector at 0.35 CPU s (20% of the 1.75 s sketchd used), 0.14 s of it idle mark workers",
		"Over 7 scrapes the live heap the last cycle marked was 200.0 MiB to 207.0 MiB, the heap goal 330.0 MiB to 344.0 MiB, " +
			"the goal above the live heap by 130.0 MiB to 137.0 MiB, and 40.0 MiB to 61.0 MiB sat free in spans that hold objects",
		"k6 at 1,000 req/s for 30s: 4 scrapes, 0 failed; 3 seconds with store figures.",
		"compactions wrote 4.0 MiB (more than 1.0 MiB in 1 of them; the most, 4.0 MiB, at 21:00:01), commits 1.5 MiB; 3 GC cycles; sketchd used 0.8 CPU seconds.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "| 21:00:00 |") {
		t.Error("more than the 5 slowest seconds listed")
	}
	// Results of runners before the figure (no alloc_bytes) get no line.
	old := scrapes([]int64{0, 4, 0})
	for i := range old {
		old[i].Alloc = 0
	}
	if line := allocLine(old, 100); line != "" {
		t.Errorf("allocLine without the figure = %q", line)
	}
	// Nor a sentence on the collector's CPU or the heap without their figures.
	noGC := scrapes([]int64{0, 4, 0})
	for i := range noGC {
		noGC[i].GCCPU, noGC[i].GCIdle, noGC[i].HeapGoal = 0, 0, 0
	}
	if line := allocLine(noGC, 100); line == "" || strings.Contains(line, "collector") || strings.Contains(line, "live heap") {
		t.Errorf("allocLine without the collector's CPU = %q", line)
	}
}

// TestSecondSampler scrapes a real Prometheus handler (the store's
// counters, and the Go and process collectors sketchd registers) that
// fails every third request: each failure is counted, never recorded,
// and the samples carry the counters.
func TestSecondSampler(t *testing.T) {
	reg := prometheus.NewRegistry()
	written := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sketchd_store_compaction_written_bytes_total"}, []string{"level"})
	commit := prometheus.NewCounter(prometheus.CounterOpts{Name: "sketchd_store_commit_bytes_total"})
	// The Go collector with the runtime's GC CPU estimates, as sketchd
	// registers it (cmd/sketchd, goCollector).
	goColl := collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{
		Matcher: regexp.MustCompile(`^/cpu/classes/gc/|^/gc/heap/(goal|live):bytes$`),
	}))
	reg.MustRegister(written, commit, goColl, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	written.WithLabelValues("1").Add(3 << 20)
	written.WithLabelValues("2").Add(4 << 20)
	commit.Add(1 << 20)

	var mu sync.Mutex
	served, failedServed := 0, 0
	enough := make(chan struct{})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		served++
		n := served
		if n%3 == 0 {
			failedServed++
		}
		if n == 9 {
			close(enough)
		}
		mu.Unlock()
		if n%3 == 0 {
			http.Error(w, "scrape failed", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, req)
	}))
	defer srv.Close()

	runtime.GC() // at least one cycle for go_gc_duration_seconds_count
	// process_cpu_seconds_total counts 10 ms clock ticks: a test process
	// run alone may not have used one yet (it read 0 when this test ran
	// by itself).
	for markCPU().runner < 50*time.Millisecond {
		spinHash()
	}
	s := startSampler(context.Background(), newClient(srv.URL).metrics, 20*time.Millisecond)
	<-enough
	samples, failed := s.finish()
	mu.Lock()
	defer mu.Unlock()
	// A scrape that timed out on the client is a failure the server
	// counted as served, or (cancelled before its handler ran) did not
	// see at all; none is recorded twice or lost: every sample is a scrape
	// the server answered, every scrape it failed a failure.
	if len(samples) > served-failedServed || len(samples)+failed < served || failed < failedServed {
		t.Errorf("%d samples + %d failed, server saw %d scrapes of which it failed %d", len(samples), failed, served, failedServed)
	}
	for _, sm := range samples {
		if sm.Compaction != 7<<20 || sm.Commit != 1<<20 || sm.GCCycles <= 0 || sm.CPU <= 0 || sm.Alloc <= 0 || sm.GCCPU <= 0 || sm.HeapGoal <= 0 || sm.HeapLive <= 0 || sm.At.IsZero() {
			t.Errorf("sample %+v: want compactions 7 MiB, commits 1 MiB, GC cycles, CPU, GC CPU, heap goal, live heap and bytes allocated > 0", sm)
		}
	}
}

// TestVegetaRequests: vegeta's results give each request's send time,
// latency and failure (an error or a status outside 2xx), and the
// timeline groups them by the second they were sent in.
func TestVegetaRequests(t *testing.T) {
	lines := `{"code":200,"latency":2000000,"error":"","timestamp":"2026-12-05T21:00:00.999Z","url":"http://127.0.0.1:1/v1/x"}
{"code":503,"latency":90000000,"error":"","timestamp":"2026-12-05T21:00:01.000Z","url":"http://127.0.0.1:1/v1/x"}
{"code":0,"latency":10000000000,"error":"timeout","timestamp":"2026-12-05T21:00:01.500+00:00","url":"http://127.0.0.1:1/v1/x"}

{"code":204,"latency":1000000,"error":"","timestamp":"2026-12-05T22:00:01.9+01:00","url":"http://127.0.0.1:1/v1/x"}
`
	reqs, err := vegetaRequests(strings.NewReader(lines))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 4 || !reqs[0].At.Equal(t0.Add(999*time.Millisecond)) || reqs[1].Latency != 90*time.Millisecond ||
		reqs[0].Bad || !reqs[1].Bad || !reqs[2].Bad || reqs[3].Bad {
		t.Fatalf("requests %+v", reqs)
	}
	tl := BuildTimeline(nil, 0, reqs, true)
	if len(tl.Seconds) != 2 || tl.Seconds[0].Requests != 1 || tl.Seconds[1].Requests != 3 || tl.Seconds[1].Errors != 2 ||
		tl.Seconds[1].Max != 10_000 {
		t.Errorf("seconds %+v, want 1 request at 21:00:00, 3 (2 failed, max 10 s) at 21:00:01", tl.Seconds)
	}
	if sp := tl.Split; sp == nil || sp.Unsampled != 2 || sp.Compacting.Seconds+sp.Quiet.Seconds != 0 {
		t.Errorf("split %+v, want 2 unsampled seconds", sp)
	}
	if _, err := vegetaRequests(strings.NewReader("{not json\n")); err == nil {
		t.Error("bad JSON: no error")
	}
}

// TestTimelineMinuteSplit: the requests sent in a minute's first
// MinuteSeconds seconds are pooled apart from the others.
func TestTimelineMinuteSplit(t *testing.T) {
	// 03:38:50 .. 03:39:09
	reqs := tenEachSecond(time.Date(2026, 12, 6, 3, 38, 50, 0, time.UTC), 20, func(at time.Time) time.Duration {
		if at.Second() < MinuteSeconds {
			return 70 * time.Millisecond
		}
		return 5 * time.Millisecond
	})
	tl := BuildTimeline(nil, 0, reqs, true)
	sp := tl.SplitMinute
	if sp == nil || sp.Compacting.Seconds != MinuteSeconds || sp.Compacting.Requests != 10*MinuteSeconds || sp.Compacting.P99 != 70 ||
		sp.Quiet.Seconds != 20-MinuteSeconds || sp.Quiet.P99 != 5 {
		t.Fatalf("SplitMinute = %+v", sp)
	}
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "k6 dashboard", Rate: 100, Duration: 20 * time.Second, Timeline: tl})
	if want := "Seconds in which a wall-clock minute began less than 5 s before (the 1-minute panes' ranges move and the pane that turned final is read): p99 70.00 ms over 50 requests in 5 s; the other seconds: p99 5.00 ms"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

// tenEachSecond returns 10 requests sent in each of n seconds from t0,
// each taking latency(its second).
func tenEachSecond(t0 time.Time, n int, latency func(time.Time) time.Duration) []request {
	var reqs []request
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		for range 10 {
			reqs = append(reqs, request{At: at, Latency: latency(at)})
		}
	}
	return reqs
}

// TestSplitQuarter: the requests sent in a quarter hour's first
// QuarterSeconds are split from the others, here across 07:00.
func TestSplitQuarter(t *testing.T) {
	// 06:59:30 .. 07:00:29
	reqs := tenEachSecond(time.Date(2026, 12, 7, 6, 59, 30, 0, time.UTC), 60, func(at time.Time) time.Duration {
		if at.Minute() == 0 && at.Second() < QuarterSeconds {
			return 500 * time.Millisecond
		}
		return 5 * time.Millisecond
	})
	tl := BuildTimeline(nil, 0, reqs, true)
	sp := tl.SplitQuarter
	if sp == nil || sp.Compacting.Seconds != QuarterSeconds || sp.Compacting.Requests != 10*QuarterSeconds || sp.Compacting.P99 != 500 ||
		sp.Quiet.Seconds != 60-QuarterSeconds || sp.Quiet.P99 != 5 {
		t.Fatalf("SplitQuarter = %+v", sp)
	}
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "vegeta", Rate: 10, Duration: time.Minute, Timeline: tl})
	if want := "Seconds in which a wall-clock quarter hour began less than 30 s before (the rollup blocks, and at an hour the tier's hours, inside the windows of a moving from change: new pieces): p99 500.00 ms over 300 requests in 30 s; the other seconds: p99 5.00 ms"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

// TestSplitGC: the seconds in which a GC cycle ended are split from the
// others, by the growth of the GC counter between consecutive scrapes.
func TestSplitGC(t *testing.T) {
	samples := scrapes([]int64{0, 0, 0, 0})
	// scrapes counts a cycle in every second; only seconds 1 and 3 have one here.
	gc := int64(0)
	for i := range samples {
		if i == 2 || i == 4 {
			gc++
		}
		samples[i].GCCycles = gc
	}
	tl := BuildTimeline(samples, 0, requests([]float64{1, 40, 2, 60}, []int{0, 0, 0, 0}), true)
	checkSplit(t, "split by GC", tl.SplitGC, &CompactionSplit{
		Compacting: SplitSide{Seconds: 2, Requests: 200, P99: 60},
		Quiet:      SplitSide{Seconds: 2, Requests: 200, P99: 2}})
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "vegeta", Rate: 100, Timeline: tl})
	if md := b.String(); !strings.Contains(md, "Seconds in which sketchd's Go GC finished a cycle (`go_gc_duration_seconds_count` grew): p99 60.00 ms") {
		t.Errorf("the report lacks the GC split:\n%s", md)
	}
}

// TestTimelineFirstMinuteSplit: the requests sent in the phase's first
// FirstMinute are pooled apart from the later ones, and a phase no longer
// than that has no such split.
func TestTimelineFirstMinuteSplit(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 52, 22, 0, time.UTC)
	var reqs []request
	for i := range 150 { // 150 s, 10 requests each second
		at := t0.Add(time.Duration(i) * time.Second)
		lat := 4 * time.Millisecond
		if i < 60 {
			lat = 30 * time.Millisecond
		}
		for range 10 {
			reqs = append(reqs, request{At: at, Latency: lat})
		}
	}
	tl := BuildTimeline(nil, 0, reqs, true)
	checkSplit(t, "split by the first minute", tl.SplitFirstMinute, &CompactionSplit{
		Compacting: SplitSide{Seconds: 60, Requests: 600, P99: 30},
		Quiet:      SplitSide{Seconds: 90, Requests: 900, P99: 4}})
	var b strings.Builder
	renderTimeline(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &QueryLoad{Tool: "k6 dashboard", Rate: 100, Duration: 150 * time.Second, Timeline: tl})
	if want := "Seconds in which the phase was in its first minute"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
	if want := "p99 30.00 ms over 600 requests in 60 s; the other seconds: p99 4.00 ms over 900 requests in 90 s."; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
	if short := BuildTimeline(nil, 0, reqs[:600], true); short.SplitFirstMinute != nil {
		t.Errorf("a 60 s phase has a first-minute split: %+v", short.SplitFirstMinute)
	}
}

// spinHash burns a little CPU.
func spinHash() {
	h := fnv.New64a()
	for i := range 10000 {
		_, _ = h.Write([]byte{byte(i)})
	}
	_ = h.Sum64()
}
