package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMachineBusy(t *testing.T) {
	// proc(5): user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  1000 50 300 9000 70 5 15 40 200 0\ncpu0 500 25 150 4500 35 2 7 20 100 0\nintr 1 2 3\n"
	busy, steal, ok := machineBusy(stat)
	if !ok || busy != (1000+50+300+5+15)/float64(userHz) || steal != 40/float64(userHz) {
		t.Fatalf("machineBusy = %v, %v, %v; want 13.7, 0.4, true", busy, steal, ok)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 x 4 5 6 7 8\n", "cpu 1 2 3\n"} {
		if _, _, ok := machineBusy(bad); ok {
			t.Errorf("machineBusy(%q) ok", bad)
		}
	}
}

func TestPhaseCPU(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	tr := toolRun{cpu: 12 * time.Second,
		before: cpuMark{at: t0, runner: time.Second, machine: 100, steal: 1},
		after:  cpuMark{at: t0.Add(30 * time.Second), runner: 4 * time.Second, machine: 148, steal: 3}}
	samples := []StoreSample{
		{At: t0.Add(-time.Second), CPU: 0},        // before the run: left out
		{At: t0.Add(time.Second), CPU: 10},        // first inside
		{At: t0.Add(21 * time.Second), CPU: 24},   // 14 s of CPU in 20 s
		{At: t0.Add(31 * time.Second), CPU: 1000}, // after: left out
	}
	c := phaseCPU(tr, samples, 2)
	want := PhaseCPU{Wall: 30, CPUs: 2, Sketchd: 21, Tool: 12, Runner: 3, Machine: 48, Steal: 2}
	if c == nil || *c != want {
		t.Fatalf("phaseCPU = %+v, want %+v", c, want)
	}
	line := cpuLine("k6", c)
	for _, w := range []string{"sketchd 21.0 s (70% of one core)", "k6 12.0 s (40% of one core)", "runner (live publisher, scrapes, parsing) 3.0 s (10%",
		"everything else 12.0 s (40% of one core)", "the machine was 80% busy", "hypervisor took 2.0 s (7% of one core)"} {
		if !strings.Contains(line, w) {
			t.Errorf("cpuLine lacks %q:\n%s", w, line)
		}
	}
	if phaseCPU(toolRun{}, samples, 2) != nil || cpuLine("k6", nil) != "" {
		t.Error("a tool that did not run has a CPU line")
	}
}

// TestRunCPU runs a real command that burns CPU: its rusage and the
// machine's busy time both see it.
func TestRunCPU(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat")
	}
	p := newProcs(io.Discard)
	_, tr, err := p.runCPU(context.Background(), time.Minute, "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err != nil {
		t.Fatal(err)
	}
	c := phaseCPU(tr, nil, 1)
	t.Logf("tool %.2f s, machine busy %.2f s, wall %.2f s", c.Tool, c.Machine, c.Wall)
	if c.Tool <= 0 || c.Machine <= 0 || c.Tool > c.Wall*1.05+0.02 {
		t.Fatalf("tool CPU %.3f s, machine %.3f s over %.3f s", c.Tool, c.Machine, c.Wall)
	}
}
