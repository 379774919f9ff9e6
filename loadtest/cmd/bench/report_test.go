package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func fixture() *Results {
	r := &Results{
		Config:      defaultConfig(false),
		Started:     time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC),
		Elapsed:     5 * time.Minute,
		Machine:     Machine{Commit: "abc123", CPU: "AMD EPYC", NProc: 2, LoadStart: "3.10 2.00 1.00", LoadEnd: "4.00 3.00 2.00"},
		Tools:       []ToolInfo{{"nats", "github.com/nats-io/natscli v0.5.1", 0}, {"k6", "go.k6.io/k6 v1.8.1", 6 * time.Minute}},
		MsgSize:     116,
		CeilingCore: Ceiling{Rate: 400_000},
		CeilingJS:   Ceiling{Rate: 200_000},
		IngestCore:  Ingest{Rate: 280_000, Events: 400_000},
		IngestJS:    Ingest{Rate: 139_999, Events: 400_000},
		Vegeta: &QueryLoad{Tool: "vegeta", Rate: 1000, Duration: 30 * time.Second,
			All:     Latency{Requests: 30000, P99: 9.5},
			ByRange: map[string]Latency{"1h": {Requests: 24600, P99: 8.25}, "24h": {Requests: 5400, P99: 40}, "30d": {Requests: 2400, P99: 50}}},
		K6: &QueryLoad{Tool: "k6", Rate: 1000, Duration: 30 * time.Second, All: Latency{Requests: 30000, Errors: 2},
			ByRange: map[string]Latency{"1h": {P99: 12.5}, "24h": {P99: 51}}},
		Dashboard: &QueryLoad{Tool: "k6 dashboard", Rate: 100, Duration: time.Minute, All: Latency{Requests: 6000, P50: 1, P99: 19.5}, ThresholdsOK: true},
		Phases: []PhaseMemory{{Phase: "ingest", Duration: time.Minute, PeakRSS: 350 << 20, HWM: 380 << 20, HWMReset: true, PeakAnon: 300 << 20,
			PeakAt: time.Date(2026, 12, 7, 11, 2, 3, 400e6, time.UTC), AnonAtPeak: 290 << 20, StoreWrites: true, CommitBytes: 60 << 20, CompactionBytes: 210 << 20},
			{Phase: "dashboard", Duration: time.Minute, PeakRSS: 390 << 20, HWM: 401 << 20}},
		Profiles: []Profile{{Name: "cpu, vegeta", Path: "/tmp/x/cpu.pprof", Command: "go tool pprof -top sketchd /tmp/x/cpu.pprof", Top: "Showing nodes\n  flat  flat%",
			Seconds: 6, CPU: 3}},
		Memory:   []MemSample{{Phase: "after ingest", RSS: 300 << 20, HWM: 400 << 20, OpenPanes: 1000, ActiveKeys: 100, Events: 2_000_000, Badger: 100 << 20, NATS: 500 << 20}},
		PaneKeys: 80_000,
		Service:  []ServiceTime{{Name: "hll", Range: "1h", Weight: 10, Latency: Latency{Requests: 10, Mean: 0.5}}},
		Accounting: Accounting{Published: 1000, Invalid: 5, Late: 10, SkInvalid: 5, SkTooLate: 10,
			SkApplied: 985, TruthEvent: 985},
	}
	r.Accuracy = Accuracy{Windows: 10, EventsExact: 10, K: 10}
	for range 100 {
		r.Accuracy.HLL.Add(0.01, true)
		r.Accuracy.CMS.Add(0.1, true)
		r.Accuracy.Quantile.Add(0.001, true)
		r.Accuracy.Theta.Add(0.02, true)
		r.Accuracy.DDSketch.Add(0.005, true)
		r.Accuracy.Rank.Add(0.001, true)
		r.Accuracy.Trimmed.Add(0.001, true)
	}
	r.Accuracy.Rank.Add(0.01, false) // 100 of 101: ≥ 99%
	for range 10 {
		r.Accuracy.Mean.Add(0, true)
		r.Accuracy.Multi.Add(0, true)
	}
	r.Accuracy.HLL.Add(0.05, false)
	r.Accuracy.TopK.Add(1, true)
	r.Accuracy.Reservoir.Add(0, true)
	return r
}

func TestTargets(t *testing.T) {
	r := fixture()
	met := map[string]bool{}
	for _, tg := range r.Targets() {
		met[tg.Name] = tg.Met
	}
	want := map[string]bool{
		"ingest, core NATS":                                     true,  // 70% exactly
		"ingest, JetStream":                                     false, // just under 70%
		"vegeta: query p99, 1-hour ranges":                      true,
		"vegeta: query p99, 24-hour ranges":                     true,
		"vegeta: query p99, 30-day ranges":                      true, // 50 ms exactly
		"vegeta: errors":                                        true,
		"k6: query p99, 1-hour ranges":                          false,
		"k6: query p99, 24-hour ranges":                         false, // 51 ms
		"k6: query p99, 30-day ranges":                          false, // not measured
		"k6: errors":                                            false,
		"k6: dropped arrivals":                                  true,
		"dashboard: query p99":                                  true,
		"dashboard: errors":                                     true,
		"peak RSS over the whole run":                           false, // 401 MiB in the dashboard phase
		"core NATS drops":                                       true,
		"exact event counts":                                    true,
		"HLL: truth inside [lower, upper]":                      true, // 100 of 101
		"count-min: true ≤ estimate ≤ true + εN":                true,
		"t-digest: rank error ≤ stated rank_error":              true,
		"t-digest: true rank in [lower, upper] (rank=)":         true,
		"t-digest: true trimmed mean in [lower, upper] (trim=)": true,
		"t-digest: true mean in [lower, upper]":                 true,
		"multi-aggregate answers equal the single ones":         true,
		"reservoir: population = events":                        true,
		"backfill accounting":                                   true,
		"theta: truth inside [lower, upper]":                    true,
		"ddsketch: relative error ≤ α":                          true,
	}
	for name, w := range want {
		if got, ok := met[name]; !ok || got != w {
			t.Errorf("target %q: met %v (present %v), want %v", name, got, ok, w)
		}
	}
	if len(met) != len(want) {
		t.Errorf("%d targets, want %d", len(met), len(want))
	}
	missed := r.Missed()
	if !slices.Equal(missed, []string{"ingest, JetStream", "k6: query p99, 1-hour ranges", "k6: query p99, 24-hour ranges",
		"k6: query p99, 30-day ranges", "k6: errors", "peak RSS over the whole run"}) {
		t.Errorf("missed %v", missed)
	}
	r.Accounting.SkTooLate = 9
	if !slices.Contains(r.Missed(), "backfill accounting") {
		t.Error("a wrong too-late count is not a miss")
	}
	// The stated confidence of rank_error is 0.99: 2 misses in 102 is one
	// too many; one different multi-aggregate window is a miss.
	r.Accuracy.Quantile.Add(0.01, false)
	r.Accuracy.Quantile.Add(0.01, false)
	r.Accuracy.Multi.Add(0, false)
	for _, name := range []string{"t-digest: rank error ≤ stated rank_error", "multi-aggregate answers equal the single ones"} {
		if !slices.Contains(r.Missed(), name) {
			t.Errorf("%q is not a miss: %v", name, r.Missed())
		}
	}
}

func TestRenderMarkdown(t *testing.T) {
	md := RenderMarkdown(fixture())
	for _, want := range []string{
		"commit `abc123`",
		"load average (1, 5, 15 min) at the start: 3.10 2.00 1.00",
		"k6 go.k6.io/k6 v1.8.1 (go install took 6m0s)",
		"| ingest, core NATS | ≥ 70% of the transport's ceiling | 280,000/s / 400,000/s = 70% | yes |",
		"| ingest, JetStream | ≥ 70% of the transport's ceiling | 139,999/s / 200,000/s = 70% | **no** |",
		"| core NATS | 400,000/s | 280,000/s | 70% | 400,000 |",
		"| vegeta | 1h | 24,600 | 0 | 0.00 ms | 0.00 ms | 8.25 ms |",
		"| k6 | 1h | – | – |",
		"RSS per M events",
		"| after ingest | 2,000,000 | 100 | 1,000 | 300.0 MiB | 400.0 MiB | 150.0 MiB | 3072.0 KiB | 100.0 MiB | 50.0 MiB | 1024.0 KiB | 1311 B | 500.0 MiB | 250.0 MiB |",
		"go run ./loadtest/cmd/bench\n",
		"| vegeta | 30d | 2,400 | 0 |",
		"| peak RSS over the whole run | ≤ 400 MiB at the default settings | 401.0 MiB (per phase: section 5) | **no** |",
		"| ingest | 1m0s | 350.0 MiB | 290.0 MiB + 60.0 MiB (11:02:03.4) | 380.0 MiB | 300.0 MiB | 60.0 MiB | 210.0 MiB |",
		"| dashboard | 1m0s | 390.0 MiB | – | – | 0.0 MiB | – | – |",
		"| dashboard: query p99 | ≤ 20 ms, 50 users refreshing 10 panels × 20 filter values every 5 s, while ingesting | 19.50 ms | yes |",
		"| 6,000 | 0 | 1.00 ms |",
		"cpu, vegeta (`go tool pprof -top sketchd <cpu, vegeta.pprof>`): 3.00 s of CPU sampled in 6.00 s, 50% of one core (the machine has 2):\n\n```\nShowing nodes\n  flat  flat%\n```",
		"final window",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "%!") {
		t.Errorf("report has a formatting error: %s", md[strings.Index(md, "%!")-80:strings.Index(md, "%!")+20])
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProfileDuration(t *testing.T) {
	top := "File: sketchd\nType: cpu\nDuration: 6.03s, Total samples = 3470ms (57.56%)\nShowing nodes accounting for 2.23s"
	if sec, cpu := parseProfileDuration(top); sec != 6.03 || cpu != 3.47 {
		t.Errorf("parseProfileDuration = %g, %g, want 6.03, 3.47", sec, cpu)
	}
	if sec, cpu := parseProfileDuration("Showing nodes"); sec != 0 || cpu != 0 {
		t.Errorf("no header: %g, %g", sec, cpu)
	}
	if got := trimPprofTop(top); got != "Showing nodes accounting for 2.23s" {
		t.Errorf("trimPprofTop = %q", got)
	}
}

func TestRenderFloor(t *testing.T) {
	r := fixture()
	if md := RenderMarkdown(r); strings.Contains(md, "The tools' floor") {
		t.Error("a run without a floor renders one")
	}
	r.Floor = []*QueryLoad{
		{Tool: "vegeta", Rate: 1000, Duration: 15 * time.Second, All: Latency{Requests: 15000, P50: 0.3, P90: 0.6, P99: 2.25, Max: 9},
			CPU: &PhaseCPU{Wall: 15, Tool: 4.5, Sketchd: 6}},
		{Tool: "k6", Rate: 1000, Duration: 15 * time.Second, All: Latency{Requests: 15001, Errors: 1, P99: 7.5}},
	}
	md := RenderMarkdown(r)
	for _, want := range []string{
		"| vegeta | /healthz, 1000 req/s for 15s | 15,000 | 0 | 0.30 ms | 0.60 ms | 2.25 ms | 9.00 ms | 30%, 40% |",
		"| k6 | /healthz, 1000 req/s for 15s | 15,001 | 1 | 0.00 ms | 0.00 ms | 7.50 ms | 0.00 ms | – |",
		"vegeta: the mix's 1-hour p99 8.25 ms against the floor's 2.25 ms.",
		"k6: the mix's 1-hour p99 12.50 ms against the floor's 7.50 ms.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
