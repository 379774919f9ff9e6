package main

import (
	"context"
	"math"
	"slices"
	"time"
)

// Timeline is one query-load phase second by second: what sketchd's
// store, garbage collector and CPU did in each second (from /metrics,
// scraped once a second while the phase ran) beside the latencies of the
// requests sent in it. It is how the report tells whether Badger's
// compactions cause the latency tail.
type Timeline struct {
	// Samples are the scrapes, as read (cumulative counters); Failed
	// counts the scrapes that failed (their seconds have no store figures).
	Samples []StoreSample `json:"samples"`
	Failed  int           `json:"failed"`
	// Seconds are the seconds with requests or store figures, in order.
	Seconds []Second `json:"seconds"`
	// Latencies says whether the tool kept per-request latencies (vegeta
	// does, and k6 in the dashboard phase, from its CSV output; the k6
	// phase at 1,000/s exports only its summary, so its seconds have store
	// figures only).
	Latencies bool `json:"latencies"`
	// Split compares the requests of the seconds in which compactions
	// wrote more than CompactingBytes with those of the other seconds
	// (nil without latencies). Badger adds a compaction's bytes only when
	// it finishes, so a long compaction counts in its last second only;
	// SplitRunning therefore also counts the seconds in which one was
	// running at either scrape (compaction tables > 0) or finished.
	Split        *CompactionSplit `json:"split,omitempty"`
	SplitRunning *CompactionSplit `json:"split_running,omitempty"`
	// SplitMinute compares the requests sent in the first MinuteSeconds
	// of a wall-clock minute with the others (nil without latencies): at
	// a minute the 1-minute panes' ranges move (a default from = now − 1h
	// moves a pane, so every window anchored at it is new) and the pane
	// that turned final is read, the once-a-minute work of
	// BenchmarkDashboardMinuteMove. Compacting counts the minute's first
	// seconds, Quiet the others; Unsampled is 0.
	SplitMinute *CompactionSplit `json:"split_minute,omitempty"`
	// SplitQuarter compares the requests sent in the first
	// QuarterSeconds of a wall-clock quarter hour with the others (nil
	// without latencies): at a quarter hour the rollup blocks (15 panes)
	// inside every window anchored at a from that moves with the clock
	// (the mix's 24-hour series at an hour's step) change, and at an hour
	// the rollup tier's hours inside the 30-day series' days, so each such
	// window's pieces are new (the query package's pieces.go). Compacting
	// counts the quarter's first seconds, Quiet the others; Unsampled is 0.
	SplitQuarter *CompactionSplit `json:"split_quarter,omitempty"`
	// SplitGC compares the seconds in which sketchd's Go GC finished a
	// cycle (go_gc_duration_seconds_count grew between the scrapes) with
	// the others (nil without latencies). A cycle stops the world twice
	// and marks for tens to hundreds of milliseconds on both CPUs
	// (GODEBUG=gctrace=1 in the runner's environment shows it in
	// sketchd.log); its second is the one it ended in.
	SplitGC *CompactionSplit `json:"split_gc,omitempty"`
	// SplitFirstMinute compares the requests sent in the phase's first
	// FirstMinute with the later ones (nil without latencies, or when the
	// phase is no longer than that): sketchd computes a question's next
	// windows ahead only once it has seen the question move (the query
	// package's ahead jobs), so the first clock move of a phase is never
	// predicted, and the later minutes are the steady state of a
	// dashboard that stays open. Compacting counts the first minute, Quiet
	// the rest; Unsampled is 0.
	SplitFirstMinute *CompactionSplit `json:"split_first_minute,omitempty"`
	// Server is the phase's latency by sketchd's own histogram, between
	// the first and the last scrape (nil in older results).
	Server *ServerLatency `json:"server,omitempty"`
	// Work is what the queries' caches did between the first and the
	// last scrape (nil in older results).
	Work QueryWork `json:"query_work,omitempty"`
}

// StoreSample is one scrape of sketchd's /metrics: the counters that show
// background work competing with the queries.
type StoreSample struct {
	At time.Time `json:"at"` // when the scrape was sent
	// Compaction is sketchd_store_compaction_written_bytes_total summed
	// over the levels; Commit sketchd_store_commit_bytes_total.
	Compaction int64 `json:"compaction_bytes"`
	Commit     int64 `json:"commit_bytes"`
	// GCCycles is go_gc_duration_seconds_count (or, without it,
	// go_gc_cycles_total_gc_cycles_total).
	GCCycles int64 `json:"gc_cycles"`
	// Alloc is go_memstats_alloc_bytes_total: the bytes sketchd allocated
	// so far (0 in results of runners before it).
	Alloc int64 `json:"alloc_bytes,omitempty"`
	// GCCPU is go_cpu_classes_gc_total_cpu_seconds_total, the runtime's
	// estimate of the CPU its collector took so far, and GCIdle the part
	// of it idle mark workers took (go_cpu_classes_gc_mark_idle_...):
	// CPU no other goroutine of sketchd wanted, but another process on
	// the machine may have (k6, the runner). 0 in results of runners
	// before it, or of a sketchd that does not export them.
	GCCPU  float64 `json:"gc_cpu_seconds,omitempty"`
	GCIdle float64 `json:"gc_idle_cpu_seconds,omitempty"`
	// HeapLive and HeapGoal are go_gc_heap_live_bytes (the heap the last
	// cycle marked) and go_gc_heap_goal_bytes (where the next starts);
	// HeapSlack is go_memstats_heap_inuse_bytes less
	// go_memstats_heap_alloc_bytes: free slots in spans that hold
	// objects, which count against the memory limit. Gauges, at the
	// scrape; 0 when sketchd does not export the first two.
	HeapLive  int64 `json:"heap_live_bytes,omitempty"`
	HeapGoal  int64 `json:"heap_goal_bytes,omitempty"`
	HeapSlack int64 `json:"heap_slack_bytes,omitempty"`
	// Tables is sketchd_store_compaction_tables: tables in the
	// compactions running at the scrape.
	Tables int64 `json:"compaction_tables"`
	// CPU is process_cpu_seconds_total.
	CPU float64 `json:"cpu_seconds"`
	// HTTP is the request-latency histogram of the /v1 routes (httpBuckets).
	HTTP map[string]float64 `json:"http_buckets,omitempty"`
	// Query is the counters of the queries' work (queryCounts).
	Query map[string]float64 `json:"query,omitempty"`
}

// storeSample reads a scrape's counters.
func storeSample(at time.Time, m Metrics) StoreSample {
	gc := m.Sum("go_gc_duration_seconds_count")
	if gc == 0 {
		gc = m.Sum("go_gc_cycles_total_gc_cycles_total")
	}
	return StoreSample{
		At:         at,
		Compaction: int64(m.Sum("sketchd_store_compaction_written_bytes_total")),
		Commit:     int64(m.Sum("sketchd_store_commit_bytes_total")),
		GCCycles:   int64(gc),
		Alloc:      int64(m.Sum("go_memstats_alloc_bytes_total")),
		GCCPU:      m.Sum("go_cpu_classes_gc_total_cpu_seconds_total"),
		GCIdle:     m.Sum("go_cpu_classes_gc_mark_idle_cpu_seconds_total"),
		HeapLive:   int64(m.Sum("go_gc_heap_live_bytes")),
		HeapGoal:   int64(m.Sum("go_gc_heap_goal_bytes")),
		HeapSlack:  int64(m.Sum("go_memstats_heap_inuse_bytes") - m.Sum("go_memstats_heap_alloc_bytes")),
		Tables:     int64(m.Sum("sketchd_store_compaction_tables")),
		CPU:        m.Sum("process_cpu_seconds_total"),
		HTTP:       httpBuckets(m),
		Query:      queryCounts(m),
	}
}

// Second is one wall-clock second of a phase.
type Second struct {
	At time.Time `json:"at"` // the second's start
	// The requests sent in the second (vegeta's timestamps; k6's minus
	// the latency, as k6 stamps a request when it ends), the non-2xx
	// or failed ones, and their latencies in ms.
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Store says whether two scrapes about a second apart bracket the
	// second; then the rest is what happened between them: bytes written
	// by compactions and by commits, GC cycles, CPU seconds used, and the
	// most tables in running compactions at either scrape.
	Store           bool    `json:"store"`
	CompactionBytes int64   `json:"compaction_bytes"`
	CommitBytes     int64   `json:"commit_bytes"`
	GCCycles        int64   `json:"gc_cycles"`
	CPU             float64 `json:"cpu_seconds"`
	Tables          int64   `json:"compaction_tables"`
}

// CompactingBytes is the compaction writes that make a second count as
// compacting in the split.
const CompactingBytes = 1 << 20

// CompactionSplit is the latency of the requests of the compacting
// seconds against the other seconds with store figures; Unsampled counts
// the seconds with requests but no store figures (left out of both).
type CompactionSplit struct {
	Compacting SplitSide `json:"compacting"`
	Quiet      SplitSide `json:"quiet"`
	Unsampled  int       `json:"unsampled"`
}

// SplitSide is one side of the split: how many seconds and requests, and
// the p99 over all those requests (NaN-free: 0 without requests).
type SplitSide struct {
	Seconds  int     `json:"seconds"`
	Requests int     `json:"requests"`
	P99      float64 `json:"p99_ms"`
}

// request is one request of a load tool: when it was sent, how long it
// took, whether it failed; for the dashboard (k6's CSV output), its panel
// and its answer (answerFresh, answerStale, answerUnknown).
type request struct {
	At      time.Time
	Latency time.Duration
	Bad     bool
	Panel   string
	Answer  string
}

// BuildTimeline joins the scrapes of a phase with its requests (none for
// a tool without per-request data).
func BuildTimeline(samples []StoreSample, failed int, reqs []request, latencies bool) *Timeline {
	store := storeSeconds(samples)
	byReq := requestSeconds(reqs)
	tl := &Timeline{Samples: samples, Failed: failed, Latencies: latencies}
	if len(samples) > 1 {
		tl.Server = serverLatency(samples[0].HTTP, samples[len(samples)-1].HTTP)
		tl.Work = queryWork(samples)
	}
	for _, sec := range unionKeys(store, byReq) {
		s := Second{At: time.Unix(sec, 0).UTC()}
		if ms, ok := byReq[sec]; ok {
			s.Requests, s.Errors = len(ms.ms), ms.errs
			slices.Sort(ms.ms)
			s.P50, s.P99, s.Max = percentileSorted(ms.ms, 50), percentileSorted(ms.ms, 99), ms.ms[len(ms.ms)-1]
		}
		if d, ok := store[sec]; ok {
			s.Store = true
			s.CompactionBytes, s.CommitBytes, s.GCCycles, s.CPU, s.Tables = d.Compaction, d.Commit, d.GCCycles, d.CPU, d.Tables
		}
		tl.Seconds = append(tl.Seconds, s)
	}
	if latencies {
		tl.Split = splitBy(store, byReq, func(d StoreSample) bool { return d.Compaction > CompactingBytes })
		tl.SplitRunning = splitBy(store, byReq, func(d StoreSample) bool { return d.Tables > 0 || d.Compaction > 0 })
		tl.SplitMinute = splitBySecond(byReq, func(sec int64) bool { return sec%60 < MinuteSeconds })
		tl.SplitQuarter = splitBySecond(byReq, func(sec int64) bool { return sec%900 < QuarterSeconds })
		tl.SplitGC = splitBy(store, byReq, func(d StoreSample) bool { return d.GCCycles > 0 })
		tl.SplitFirstMinute = splitFirstMinute(byReq)
	}
	return tl
}

// FirstMinute is the start of a phase that Timeline.SplitFirstMinute
// tells apart.
const FirstMinute = time.Minute

// splitFirstMinute splits the requests at FirstMinute after the phase's
// first request, or returns nil when none was sent after it.
func splitFirstMinute(byReq map[int64]*secondReqs) *CompactionSplit {
	if len(byReq) == 0 {
		return nil
	}
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for sec := range byReq {
		first, last = min(first, sec), max(last, sec)
	}
	cut := first + int64(FirstMinute/time.Second)
	if last < cut {
		return nil
	}
	return splitBySecond(byReq, func(sec int64) bool { return sec < cut })
}

// MinuteSeconds is how many seconds after a whole minute count as the
// minute's turn in Timeline.SplitMinute.
const MinuteSeconds = 5

// QuarterSeconds is how many seconds after a whole quarter hour count as
// the quarter's turn in Timeline.SplitQuarter: the recompute it sets off
// took tens of seconds under the runner's load (docs/operations.md,
// "Quarter-hour recomputes").
const QuarterSeconds = 30

// storeSeconds returns, per unix second, what happened between two
// consecutive scrapes between 0.5 s and 1.5 s apart, attributed to the
// second nearest the first scrape (the sampler scrapes just after each
// whole second). A failed scrape leaves a longer gap: its seconds get
// nothing. So does a counter that went back (sketchd restarted).
func storeSeconds(samples []StoreSample) map[int64]StoreSample {
	out := map[int64]StoreSample{}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if gap := b.At.Sub(a.At); gap < time.Second/2 || gap > 3*time.Second/2 {
			continue
		}
		d := StoreSample{At: a.At, Compaction: b.Compaction - a.Compaction, Commit: b.Commit - a.Commit,
			GCCycles: b.GCCycles - a.GCCycles, CPU: b.CPU - a.CPU, Tables: max(a.Tables, b.Tables)}
		if d.Compaction < 0 || d.Commit < 0 || d.GCCycles < 0 || d.CPU < 0 {
			continue
		}
		out[a.At.Round(time.Second).Unix()] = d
	}
	return out
}

// secondReqs are the latencies (ms) and failures of one second's requests.
type secondReqs struct {
	ms   []float64
	errs int
}

// requestSeconds groups requests by the unix second they were sent in.
func requestSeconds(reqs []request) map[int64]*secondReqs {
	out := map[int64]*secondReqs{}
	for _, r := range reqs {
		if r.At.IsZero() {
			continue // no timestamp: no second
		}
		sec := r.At.Unix()
		if out[sec] == nil {
			out[sec] = &secondReqs{}
		}
		out[sec].ms = append(out[sec].ms, float64(r.Latency)/float64(time.Millisecond))
		if r.Bad {
			out[sec].errs++
		}
	}
	return out
}

func unionKeys[A, B any](a map[int64]A, b map[int64]B) []int64 {
	var ks []int64
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// splitBy pools the requests of the seconds whose store figures are
// compacting and of the other ones and takes the p99 of each pool; the
// seconds without store figures are left out (Unsampled).
func splitBy(store map[int64]StoreSample, byReq map[int64]*secondReqs, compacting func(StoreSample) bool) *CompactionSplit {
	return splitSeconds(byReq, func(sec int64) (bool, bool) {
		d, ok := store[sec]
		return ok && compacting(d), ok
	})
}

// splitBySecond pools the requests of the seconds (unix) for which in is
// true (Compacting) and of the others (Quiet).
func splitBySecond(byReq map[int64]*secondReqs, in func(sec int64) bool) *CompactionSplit {
	return splitSeconds(byReq, func(sec int64) (bool, bool) { return in(sec), true })
}

// splitSeconds pools the requests of each second by side(sec): in the
// Compacting or the Quiet pool, or, when known is false, neither
// (Unsampled).
func splitSeconds(byReq map[int64]*secondReqs, side func(sec int64) (in, known bool)) *CompactionSplit {
	var sp CompactionSplit
	var hot, cold []float64
	for sec, rs := range byReq {
		switch in, known := side(sec); {
		case !known:
			sp.Unsampled++
		case in:
			sp.Compacting.Seconds++
			hot = append(hot, rs.ms...)
		default:
			sp.Quiet.Seconds++
			cold = append(cold, rs.ms...)
		}
	}
	sp.Compacting.Requests, sp.Compacting.P99 = len(hot), p99OrZero(hot)
	sp.Quiet.Requests, sp.Quiet.P99 = len(cold), p99OrZero(cold)
	return &sp
}

func p99OrZero(ms []float64) float64 {
	if p := Percentile(ms, 99); !math.IsNaN(p) {
		return p
	}
	return 0
}

// secondSampler scrapes /metrics every interval, just after each whole
// interval of the wall clock, until finished. A scrape that fails (or
// takes longer than the interval) is counted and its second skipped.
type secondSampler struct {
	scrape   func(context.Context) (Metrics, error)
	interval time.Duration
	samples  []StoreSample
	failed   int
	stop     chan struct{}
	done     chan struct{}
}

// startSampler starts scraping; finish stops it.
func startSampler(ctx context.Context, scrape func(context.Context) (Metrics, error), interval time.Duration) *secondSampler {
	s := &secondSampler{scrape: scrape, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(ctx)
	return s
}

func (s *secondSampler) loop(ctx context.Context) {
	defer close(s.done)
	for {
		now := time.Now()
		wait := time.NewTimer(now.Truncate(s.interval).Add(s.interval).Sub(now))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-s.stop:
			wait.Stop()
			return
		case at := <-wait.C:
			s.scrapeOnce(ctx, at)
		}
	}
}

func (s *secondSampler) scrapeOnce(ctx context.Context, at time.Time) {
	sctx, cancel := context.WithTimeout(ctx, s.interval)
	defer cancel()
	m, err := s.scrape(sctx)
	if err != nil {
		s.failed++
		return
	}
	s.samples = append(s.samples, storeSample(at, m))
}

// finish stops the sampling and returns the scrapes and how many failed.
func (s *secondSampler) finish() ([]StoreSample, int) {
	close(s.stop)
	<-s.done
	return s.samples, s.failed
}
