package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PhaseCPU is where the machine's CPU went while a query-load phase ran:
// sketchd's own (process_cpu_seconds_total, first to last scrape), the load
// tool's (its rusage when it exited), the runner's (the live publisher,
// the scrapes and the tool's output parsing) and the whole machine's busy
// time (/proc/stat), so that a latency the tool saw but sketchd's own
// histogram did not can be told apart: a request waiting for a CPU that the
// tool, the publisher or another job held. All in CPU seconds.
type PhaseCPU struct {
	Wall    float64 `json:"wall_seconds"`
	CPUs    int     `json:"cpus"`
	Sketchd float64 `json:"sketchd"`
	Tool    float64 `json:"tool"`
	Runner  float64 `json:"runner"`
	// Machine is the busy time of all CPUs (user, nice, system, irq,
	// softirq) and Steal the time the hypervisor gave another guest
	// while this one had work (a shared VM); both -1 when /proc/stat
	// could not be read.
	Machine float64 `json:"machine"`
	Steal   float64 `json:"steal"`
}

// cpuMark is the runner's and the machine's CPU counters at one moment.
type cpuMark struct {
	at      time.Time
	runner  time.Duration
	machine float64 // busy seconds of all CPUs; -1 unknown
	steal   float64
}

func markCPU() cpuMark {
	m := cpuMark{at: time.Now(), machine: -1, steal: -1}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.runner = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if busy, steal, ok := machineBusy(string(b)); ok {
			m.machine, m.steal = busy, steal
		}
	}
	return m
}

// userHz is the kernel's clock tick for /proc/stat (USER_HZ, 100 on every
// Linux architecture Go runs on).
const userHz = 100

// machineBusy reads the first ("cpu") line of /proc/stat (proc(5): user
// nice system idle iowait irq softirq steal guest guest_nice): the busy
// seconds (user, nice, system, irq, softirq; guest time is inside user
// and nice) and the stolen ones.
func machineBusy(stat string) (busy, steal float64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	var n [8]uint64
	for i := range n {
		v, err := strconv.ParseUint(f[1+i], 10, 64)
		if err != nil {
			return 0, 0, false
		}
		n[i] = v
	}
	b := n[0] + n[1] + n[2] + n[5] + n[6]
	return float64(b) / userHz, float64(n[7]) / userHz, true
}

// toolRun is a load tool's run: its own CPU and the marks around it.
type toolRun struct {
	cpu           time.Duration
	before, after cpuMark
}

// phaseCPU is the CPU of the tool's run tr, with sketchd's from the scrapes
// taken while it ran (their CPU rate over their own span, times the run's
// wall time); nil when the tool did not run.
func phaseCPU(tr toolRun, samples []StoreSample, cpus int) *PhaseCPU {
	if tr.before.at.IsZero() || !tr.after.at.After(tr.before.at) {
		return nil
	}
	c := &PhaseCPU{
		Wall: tr.after.at.Sub(tr.before.at).Seconds(), CPUs: cpus,
		Tool: tr.cpu.Seconds(), Runner: (tr.after.runner - tr.before.runner).Seconds(), Machine: -1, Steal: -1,
	}
	if tr.before.machine >= 0 && tr.after.machine >= 0 {
		c.Machine, c.Steal = tr.after.machine-tr.before.machine, tr.after.steal-tr.before.steal
	}
	var in []StoreSample
	for _, s := range samples {
		if !s.At.Before(tr.before.at) && !s.At.After(tr.after.at) {
			in = append(in, s)
		}
	}
	if len(in) >= 2 {
		first, last := in[0], in[len(in)-1]
		if span := last.At.Sub(first.At).Seconds(); span > 0 {
			c.Sketchd = (last.CPU - first.CPU) / span * c.Wall
		}
	}
	return c
}

// cpuLine is the report's sentence for c.
func cpuLine(tool string, c *PhaseCPU) string {
	if c == nil || c.Wall <= 0 {
		return ""
	}
	share := func(s float64) string { return fmt.Sprintf("%.1f s (%.0f%% of one core)", s, 100*s/c.Wall) }
	line := fmt.Sprintf("CPU over the phase's %.0f s (the machine has %d cores): sketchd %s, %s %s, the runner (live publisher, scrapes, parsing) %s",
		c.Wall, c.CPUs, share(c.Sketchd), tool, share(c.Tool), share(c.Runner))
	if c.Machine >= 0 {
		other := max(0, c.Machine-c.Sketchd-c.Tool-c.Runner)
		line += fmt.Sprintf(", everything else %s; the machine was %.0f%% busy, and the hypervisor took %s", share(other),
			100*c.Machine/(c.Wall*float64(c.CPUs)), share(c.Steal))
	}
	return line + "."
}
