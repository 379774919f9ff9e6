package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The heavy-query phase (issue #14, "Heavy queries"): a reader's query
// that must be refused, `where=device=d1&group_by=country&step=1m` over
// one hour of a stream of 300k keys (42,858 countries × 7 devices: 42,858
// groups × 60 windows, over max_output_windows), asked once alone and then
// eight at once. Goals: refused in under 100 ms having allocated under
// 50 MB (sketchd's go_memstats_alloc_bytes_total around the request,
// nothing else running), and the eight keep RSS within the memory limit.
// "Nothing else running" includes the burst's own aftermath: the phase
// waits until sketchd is at rest (waitAtRest) before it asks; the 300k
// keys' panes and key-index entries set off 240-375 MiB of compactions,
// during which the same refusal took 75-142 ms instead of 10-23 at rest
// (the runner's runs of 2026-12-06/07, docs/operations.md "Table pages").
// At rest was first what the store's figures show (commits, compactions):
// waits that ended after 2-12 s were followed by refusals of 117-448 ms
// (runs x3, x6 and x7 in operations.md's "Where the RSS goes now", g1 in
// its "Scheduler threads"), g1's with the Go heap at the memory limit (a
// GC cycle every 200 ms) while, by a heap profile at the same point of
// another run, Badger's table builders held 165 MB. So it also waits for
// sketchd's CPU.

const (
	heavyCountries = 42_858
	heavyDevices   = 7
	heavyAtOnce    = 8
)

// heavyYAML is the stream of the phase: every event a new key, one HLL.
const heavyYAML = `  - name: heavy
    subject: bench.heavy
    jetstream: false
    time: {field: ts, format: unix_ms}
    group_by: [country, device]
    granularity: 1m
    max_out_of_orderness: 10s
    allowed_lateness: 1m
    aggregates:
      users: {sketch: hll, field: user_id}
`

// HeavyQuery is what the phase measured.
type HeavyQuery struct {
	Keys    int `json:"keys"`
	Dropped int `json:"dropped"`
	// RestWait is how long the phase waited after the keys were processed
	// for sketchd to come to rest (waitAtRest); RestTimedOut, that it had
	// not when the wait gave up after two minutes.
	RestWait     time.Duration `json:"rest_wait"`
	RestTimedOut bool          `json:"rest_timed_out"`
	Query        string        `json:"query"`
	// One alone: status, problem code, latency and bytes allocated.
	Status  int           `json:"status"`
	Code    string        `json:"code"`
	Limit   string        `json:"limit"` // the limit a query_too_large names
	Latency time.Duration `json:"latency"`
	Alloc   int64         `json:"alloc"`
	// Eight at once: every status, the slowest, the bytes allocated by
	// all, and the phase's peak RSS against the memory limit.
	AtOnceStatus  map[int]int   `json:"at_once_status"`
	AtOnceSlowest time.Duration `json:"at_once_slowest"`
	AtOnceAlloc   int64         `json:"at_once_alloc"`
	StartRSS      int64         `json:"start_rss"` // when the eight start
	PeakRSS       int64         `json:"peak_rss"`
	PeakAnon      int64         `json:"peak_anon"` // RssAnon: what the limit governs, without mapped files
	MemoryLimit   int64         `json:"memory_limit"`
}

// heavyQueries publishes the heavy stream's keys over the hour that ended
// two hours ago, then asks the query alone and eight at once.
func (r *runner) heavyQueries(ctx context.Context) (*HeavyQuery, error) {
	h := &HeavyQuery{Keys: heavyCountries * heavyDevices}
	hour := time.Now().Truncate(time.Hour).Add(-2 * time.Hour)
	if err := r.publishHeavy(ctx, hour, h); err != nil {
		return h, err
	}
	rest, atRest, err := r.waitAtRest(ctx)
	if err != nil {
		return h, err
	}
	h.RestWait, h.RestTimedOut = rest, !atRest
	if atRest {
		r.logf("   sketchd at rest (commits, compactions, CPU) %s after the keys were processed", rest.Round(time.Millisecond))
	} else {
		r.logf("   sketchd still busy (commits, compactions or CPU) %s after the keys were processed; asking anyway", rest.Round(time.Millisecond))
	}
	v := url.Values{"aggregate": {"users"}, "where": {"device=d1"}, "group_by": {"country"}, "step": {"1m"},
		"from": {strconv.FormatInt(hour.Unix(), 10)}, "to": {strconv.FormatInt(hour.Add(time.Hour).Unix(), 10)}}
	h.Query = "/v1/streams/heavy/query?" + v.Encode()
	reader := newClient(r.base) // no token: any reader
	alloc, err := r.allocated(ctx, func() error {
		start := time.Now()
		body, code, err := reader.do(ctx, http.MethodGet, h.Query, nil)
		h.Latency, h.Status = time.Since(start), code
		h.Code, h.Limit = problem(body)
		return err
	})
	if err != nil {
		return h, err
	}
	h.Alloc = alloc
	r.logf("   heavy query: %d %s %s in %s, %.1f MB allocated", h.Status, h.Code, h.Limit, h.Latency.Round(time.Microsecond), float64(alloc)/1e6)

	r.phase(fmt.Sprintf("6. heavy queries, %d at once", heavyAtOnce))
	if h.StartRSS, _, err = procStatus(r.sketchd.Process.Pid); err != nil {
		return h, err
	}
	h.AtOnceStatus = map[int]int{}
	h.AtOnceAlloc, err = r.allocated(ctx, func() error {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range heavyAtOnce {
			wg.Go(func() {
				start := time.Now()
				_, code, err := reader.do(ctx, http.MethodGet, h.Query, nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					code = 0
				}
				h.AtOnceStatus[code]++
				h.AtOnceSlowest = max(h.AtOnceSlowest, time.Since(start))
			})
		}
		wg.Wait()
		return nil
	})
	if err != nil {
		return h, err
	}
	h.PeakRSS, h.PeakAnon = r.mem.peak()
	m, err := r.api.metrics(ctx)
	if err != nil {
		return h, err
	}
	h.MemoryLimit = int64(m.Sum("sketchd_memory_limit_bytes")) // the process's limit
	r.logf("   %d at once: %v, slowest %s, %.1f MB allocated, peak RSS %s (limit %s)", heavyAtOnce, h.AtOnceStatus,
		h.AtOnceSlowest.Round(time.Microsecond), float64(h.AtOnceAlloc)/1e6, mib(h.PeakRSS), mib(h.MemoryLimit))
	return h, nil
}

// publishHeavy publishes one event per key, in time order over the hour,
// at most 50k per second (core NATS: a flat-out burst of new keys would
// only measure the subscriber's pending limit), and waits until sketchd
// has processed them all.
func (r *runner) publishHeavy(ctx context.Context, hour time.Time, h *HeavyQuery) error {
	m, err := r.api.metrics(ctx)
	if err != nil {
		return err
	}
	base := m.Processed("heavy") + m.Sum("sketchd_messages_dropped_total", "stream", "heavy")
	step := time.Hour / time.Duration(h.Keys)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	const perTick = 5_000
	buf := make([]byte, 0, 128)
	for i := 0; i < h.Keys; i++ {
		c, d := i/heavyDevices, i%heavyDevices
		ts := hour.Add(time.Duration(i) * step).UnixMilli()
		buf = fmt.Appendf(buf[:0], `{"ts":%d,"country":"c%05d","device":"d%d","user_id":"u%d"}`, ts, c, d, i)
		if err := r.nc.Publish("bench.heavy", buf); err != nil {
			return err
		}
		if (i+1)%perTick == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
	}
	if err := r.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	_, m, err = r.waitProcessed(ctx, "heavy", base, h.Keys, 5*time.Minute)
	if err != nil {
		return err
	}
	h.Dropped = int(m.Sum("sketchd_messages_dropped_total", "stream", "heavy"))
	return nil
}

// waitAtRest waits until sketchd is at rest: no Badger compaction ran
// (sketchd_store_compaction_tables 0), the commits wrote checkpoints only
// (under restBytes of sketchd_store_commit_bytes_total since the scrape
// before: each stream commits its checkpoint, about 200 bytes, every
// second even when idle) and sketchd used under restCPU of one core
// (process_cpu_seconds_total), in three scrapes 500 ms apart, up to two
// minutes, and returns how long it waited and whether it came to rest.
// Past two minutes it goes on without error: the report says sketchd was
// not at rest. The CPU condition sees what the store's figures do not,
// such as memtable flushes and the GC cycles they set off (one run's
// refusal took 448 ms with the store's figures at rest and the Go heap at
// the memory limit, a GC cycle every 200 ms).
func (r *runner) waitAtRest(ctx context.Context) (time.Duration, bool, error) {
	const (
		restBytes = 64 << 10
		restCPU   = 0.2 // of one core
	)
	start := time.Now()
	lastCommit, lastCPU, lastAt, quiet := -1.0, 0.0, time.Time{}, 0
	for quiet < 3 && time.Since(start) < 2*time.Minute {
		m, err := r.api.metrics(ctx)
		if err != nil {
			return time.Since(start), false, err
		}
		now := time.Now()
		committed, cpu := m.Sum("sketchd_store_commit_bytes_total"), m.Sum("process_cpu_seconds_total")
		if lastCommit >= 0 && committed-lastCommit < restBytes && m.Sum("sketchd_store_compaction_tables") == 0 &&
			cpu-lastCPU < restCPU*now.Sub(lastAt).Seconds() {
			quiet++
		} else {
			quiet = 0
		}
		lastCommit, lastCPU, lastAt = committed, cpu, now
		select {
		case <-ctx.Done():
			return time.Since(start), false, ctx.Err()
		case <-r.exited:
			return time.Since(start), false, errors.New("sketchd exited (see its log)")
		case <-time.After(500 * time.Millisecond):
		}
	}
	return time.Since(start), quiet == 3, nil
}

// allocated runs f and returns the bytes sketchd allocated meanwhile
// (go_memstats_alloc_bytes_total before and after; the phase runs
// nothing else, but the committer and the metrics scrape itself count).
func (r *runner) allocated(ctx context.Context, f func() error) (int64, error) {
	before, err := r.api.metrics(ctx)
	if err != nil {
		return 0, err
	}
	if err := f(); err != nil {
		return 0, err
	}
	after, err := r.api.metrics(ctx)
	if err != nil {
		return 0, err
	}
	return int64(after.Sum("go_memstats_alloc_bytes_total") - before.Sum("go_memstats_alloc_bytes_total")), nil
}

// problem returns the code and the limit of an error body ("" if none).
func problem(body []byte) (code, limit string) {
	var p struct {
		Code  string `json:"code"`
		Limit string `json:"limit"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Code, p.Limit
}

// heavyTargets are the goals for the heavy query.
func heavyTargets(h *HeavyQuery) []Target {
	refused := h.Status == http.StatusUnprocessableEntity && h.Limit == "max_output_windows"
	ok := 0
	for code, n := range h.AtOnceStatus {
		if code == http.StatusUnprocessableEntity {
			ok += n
		}
	}
	return []Target{
		{"heavy query: refused fast", "422, limit max_output_windows, in < 100 ms",
			fmt.Sprintf("%d %s %s in %.2f ms", h.Status, h.Code, h.Limit, ms(h.Latency)), refused && h.Latency < 100*time.Millisecond},
		{"heavy query: memory", "< 50 MB allocated", fmt.Sprintf("%.1f MB", float64(h.Alloc)/1e6), h.Alloc < 50e6},
		{fmt.Sprintf("heavy queries: %d at once", heavyAtOnce), "all refused, peak RSS within the memory limit",
			fmt.Sprintf("%d of %d refused, RSS %s -> peak %s, limit %s", ok, heavyAtOnce, mib(h.StartRSS), mib(h.PeakRSS), mib(h.MemoryLimit)),
			ok == heavyAtOnce && h.MemoryLimit > 0 && h.PeakRSS <= h.MemoryLimit},
	}
}

// renderHeavy writes the heavy-query section.
func renderHeavy(p func(string, ...any), r *Results) {
	h := r.Heavy
	if h == nil {
		return
	}
	p("## 6. Heavy queries\n\n")
	p("A reader's query that must be refused (issue #14): %s keys published to the stream `heavy` (one\n", thousands(int64(h.Keys)))
	if !h.RestTimedOut {
		p("event per key over one hour, core NATS, %d dropped), then, once sketchd's commits and Badger's compactions\n", h.Dropped)
		p("had stopped and sketchd used under a fifth of a core (%.1f s after the last key was processed), with nothing\n", h.RestWait.Seconds())
		p("else running:\n\n")
	} else {
		p("event per key over one hour, core NATS, %d dropped), then, with sketchd's commits, Badger's compactions or\n", h.Dropped)
		p("sketchd's CPU still busy %.1f s after the last key was processed (the runner stopped waiting), with nothing else running:\n\n", h.RestWait.Seconds())
	}
	p("```\nGET %s\n```\n\n", h.Query)
	p("| | status | latency | allocated by sketchd | RSS before | peak RSS | peak RssAnon | memory limit |\n|---|---|---|---|---|---|---|---|\n")
	p("| alone | %d %s (%s) | %.2f ms | %.1f MB | | | | |\n", h.Status, h.Code, h.Limit, ms(h.Latency), float64(h.Alloc)/1e6)
	p("| %d at once | %s | slowest %.2f ms | %.1f MB in all | %s | %s | %s | %s |\n\n", heavyAtOnce, statusCounts(h.AtOnceStatus), ms(h.AtOnceSlowest),
		float64(h.AtOnceAlloc)/1e6, mib(h.StartRSS), mib(h.PeakRSS), mib(h.PeakAnon), mib(h.MemoryLimit))
	p("Allocated is sketchd's `go_memstats_alloc_bytes_total` before and after (it includes the two /metrics\n")
	p("scrapes and the idle committers); the peak RSS is VmHWM, reset when the eight start. The limit is the\n")
	p("process's (`sketchd_memory_limit_bytes`, `--memory-limit`), of which 7/8 is the Go runtime's soft limit,\n")
	p("which governs the anonymous memory (RssAnon); the rest is for mapped files (the binary, Badger's table\n")
	p("pages, which the store releases while the mapped files take more than that share, memtable logs), and\n")
	p("while they take more the soft limit gives way (docs/operations.md, \"The limiter\", \"Table pages\").\n\n")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// statusCounts formats status counts: "8 × 422".
func statusCounts(m map[int]int) string {
	codes := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d × %d", m[c], c)
	}
	return strings.Join(parts, ", ")
}

// renderScaleOut points at the scale-out figures, which Go benchmarks of
// several sketchd processes on a 3-node NATS cluster measure (the runner
// drives one process).
func renderScaleOut(p func(string, ...any)) {
	p("## 7. Scale-out (measured elsewhere)\n\n")
	p("Several instances on a 3-node NATS cluster are measured by Go benchmarks and tests, not by this runner;\n")
	p("their figures, commands and machines are in [scale-out.md](scale-out.md), section 6, step 8:\n\n")
	p("- failover time, kill -9 of an owner until its partitions commit again: `go test ./cmd/sketchd -run TestClusterProcesses -v`;\n")
	p("- CPU per event with 1 and with 3 instances: `go test ./cmd/sketchd -run '^$' -bench ClusterIngest -benchtime 50000x`;\n")
	p("- the latency of a query over every partition, of each instance and of single nodes: `go test ./cmd/sketchd -run '^$' -bench ClusterQuery -benchtime 200x`;\n")
	p("- restore from the changelog per 100k panes: `go test ./internal/cluster -run '^$' -bench Restore -benchtime 2x`.\n\n")
}
