package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PhaseMemory is sketchd's peak RSS during one phase of the run.
type PhaseMemory struct {
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration"`
	// PeakRSS is the largest VmRSS sampled (every 100 ms) during the phase;
	// HWM is VmHWM at the phase's end, after the runner reset it (write 5 to
	// /proc/<pid>/clear_refs) at the phase's start: the kernel's own peak,
	// which no sample misses. HWMReset says whether the reset worked (0
	// when it did not: then HWM is the peak since the start).
	PeakRSS  int64 `json:"peak_rss"`
	HWM      int64 `json:"hwm"`
	HWMReset bool  `json:"hwm_reset"`
	// PeakAnon is the largest RssAnon sampled: the anonymous memory (Go
	// heap, Badger's and nats-server's allocations), which the memory
	// limit covers; the rest of RSS is file pages (Badger's and
	// JetStream's mmapped files), which the kernel can reclaim.
	PeakAnon int64 `json:"peak_anon"`
	// PeakAt is when the largest VmRSS was sampled, and AnonAtPeak the
	// RssAnon of that sample: whether the peak is anonymous memory or file
	// pages (absent in results of runners before them).
	PeakAt     time.Time `json:"peak_at,omitzero"`
	AnonAtPeak int64     `json:"anon_at_peak,omitempty"`
	// CommitBytes and CompactionBytes are what sketchd's store wrote in
	// the phase: its commits (sketchd_store_commit_bytes_total) and
	// Badger's compactions (sketchd_store_compaction_written_bytes_total),
	// read from /metrics at the phase's start and end; their ratio is the
	// compactions' write amplification, and compactions compete with the
	// queries for the CPU. StoreWrites says whether both reads worked.
	CommitBytes     int64 `json:"commit_bytes"`
	CompactionBytes int64 `json:"compaction_bytes"`
	StoreWrites     bool  `json:"store_writes"`
}

// storeWrites is the store's cumulative write counters at one moment.
type storeWrites struct {
	commit, compaction int64
	ok                 bool // read from /metrics
}

// memWatch samples sketchd's RSS and attributes it to the current phase.
type memWatch struct {
	pid    int
	mu     sync.Mutex
	phases []PhaseMemory
	start  time.Time
	writes storeWrites // at the current phase's start
	stop   chan struct{}
	done   chan struct{}
}

func newMemWatch(pid int) *memWatch {
	w := &memWatch{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *memWatch) loop() {
	defer close(w.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.sample()
		}
	}
}

func (w *memWatch) sample() {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(w.pid) + "/status")
	if err != nil {
		return
	}
	rss, _, err := parseProcStatus(string(b))
	if err != nil {
		return
	}
	anon := statusKB(string(b), "RssAnon:")
	w.mu.Lock()
	if n := len(w.phases); n > 0 {
		p := &w.phases[n-1]
		if rss > p.PeakRSS {
			p.PeakRSS, p.PeakAt, p.AnonAtPeak = rss, time.Now(), anon
		}
		p.PeakAnon = max(p.PeakAnon, anon)
	}
	w.mu.Unlock()
}

// statusKB returns the field of a /proc/<pid>/status text in bytes (0
// when absent).
func statusKB(s, field string) int64 {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == field && f[2] == "kB" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	return 0
}

// phase ends the current phase (recording its VmHWM, and its store writes
// from the counters now) and starts the next.
func (w *memWatch) phase(name string, now storeWrites) {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closeLocked(now)
	w.writes = now
	reset := os.WriteFile("/proc/"+strconv.Itoa(w.pid)+"/clear_refs", []byte("5"), 0) == nil
	w.phases = append(w.phases, PhaseMemory{Phase: name, HWMReset: reset})
	w.start = time.Now()
}

func (w *memWatch) closeLocked(now storeWrites) {
	if n := len(w.phases); n > 0 {
		p := &w.phases[n-1]
		p.Duration = time.Since(w.start)
		if _, hwm, err := procStatus(w.pid); err == nil {
			p.HWM = hwm
		}
		if p.StoreWrites = w.writes.ok && now.ok; p.StoreWrites {
			p.CommitBytes = now.commit - w.writes.commit
			p.CompactionBytes = now.compaction - w.writes.compaction
		}
	}
}

// finish ends the last phase (its store writes from the counters now) and
// the sampling, and returns the phases.
func (w *memWatch) finish(now storeWrites) []PhaseMemory {
	w.sample()
	w.mu.Lock()
	w.closeLocked(now)
	out := append([]PhaseMemory(nil), w.phases...)
	w.mu.Unlock()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return out
}

// PeakOverRun is the largest peak of any phase: VmHWM where it was reset
// per phase, the sampled peak otherwise.
func PeakOverRun(ps []PhaseMemory) int64 {
	var m int64
	for _, p := range ps {
		m = max(m, p.PeakRSS, p.HWM)
	}
	return m
}

// peak returns the current phase's peaks so far: the largest sampled RSS or
// VmHWM (reset at the phase's start), whichever is larger, and the largest
// sampled RssAnon.
func (w *memWatch) peak() (rss, anon int64) {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.phases); n > 0 {
		rss, anon = w.phases[n-1].PeakRSS, w.phases[n-1].PeakAnon
	}
	if _, hwm, err := procStatus(w.pid); err == nil {
		rss = max(rss, hwm)
	}
	return rss, anon
}
