package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// topSeconds is how many of the slowest seconds the report lists.
const topSeconds = 5

// renderTimelines writes, per query-load phase that has a timeline, its
// slowest seconds with what the store did in them, and whether the
// seconds with compactions have the worse tail. Results without
// timelines (older runners) get nothing.
func renderTimelines(p func(string, ...any), r *Results) {
	var qs []*QueryLoad
	for _, q := range []*QueryLoad{r.LowRate, r.Vegeta, r.K6, r.Dashboard} {
		if q != nil && q.Timeline != nil {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return
	}
	p("\n### Second by second: compactions and the latency tail\n\n")
	p("While each load ran, the runner scraped sketchd's `/metrics` just after every whole second and took the\n")
	p("difference of consecutive scrapes: what Badger's compactions wrote (`sketchd_store_compaction_written_bytes_total`,\n")
	p("all levels), what the commits wrote (`sketchd_store_commit_bytes_total`), GC cycles (`go_gc_duration_seconds_count`),\n")
	p("CPU seconds (`process_cpu_seconds_total`) and the most tables in running compactions at either scrape\n")
	p("(`sketchd_store_compaction_tables`). A failed scrape leaves its neighbouring seconds without these (\"–\").\n")
	p("Badger adds a compaction's bytes when it finishes, so a compaction that runs for several seconds shows\n")
	p("its tables in each and its bytes in the last: hence the second line per phase.\n")
	p("Latencies are those of the requests sent in that second: vegeta's (its results file) and, in the\n")
	p("dashboard phase, k6's (its CSV output; k6 stamps a request when it ends, so sent = stamp − latency).\n")
	if r.K6 != nil && r.K6.PerRequest {
		p("k6 at 1,000/s wrote its per-request CSV in this run too (`--k6-requests`), at the cost of its CPU.\n")
	} else {
		p("k6 at 1,000/s writes no per-request data (its CPU on this machine), only its summary, so that\n")
		p("phase shows the store's seconds alone.\n")
	}
	for _, q := range qs {
		renderTimeline(p, q)
	}
}

func renderTimeline(p func(string, ...any), q *QueryLoad) {
	tl := q.Timeline
	withStore := 0
	for _, s := range tl.Seconds {
		if s.Store {
			withStore++
		}
	}
	p("\n%s at %s req/s for %s: %d scrapes, %d failed; %d seconds with store figures.\n", q.Tool, thousands(int64(q.Rate)),
		q.Duration, len(tl.Samples), tl.Failed, withStore)
	if tl.Server != nil {
		p("%s\n", serverLatencyLine(tl.Server))
	}
	if line := cpuLine(toolName(q.Tool), q.CPU); line != "" {
		p("%s\n", line)
	}
	if line := queryWorkLine(tl.Work); line != "" {
		p("%s\n", line)
	}
	if line := allocLine(tl.Samples, q.All.Requests); line != "" {
		p("%s\n", line)
	}
	if !tl.Latencies {
		renderStoreOnly(p, tl)
		return
	}
	top := slowestSeconds(tl.Seconds, topSeconds)
	if len(top) == 0 {
		p("No request has a timestamp.\n")
		return
	}
	p("\n| second (UTC) | requests | errors | p50 | p99 | compactions wrote | commits wrote | GC cycles | CPU | compaction tables |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range top {
		comp, commit, gc, cpu, tables := "–", "–", "–", "–", "–"
		if s.Store {
			comp, commit = mib(s.CompactionBytes), mib(s.CommitBytes)
			gc, cpu, tables = fmt.Sprint(s.GCCycles), fmt.Sprintf("%.2f s", s.CPU), fmt.Sprint(s.Tables)
		}
		p("| %s | %s | %d | %.2f ms | %.2f ms | %s | %s | %s | %s | %s |\n", s.At.Format("15:04:05"), thousands(int64(s.Requests)),
			s.Errors, s.P50, s.P99, comp, commit, gc, cpu, tables)
	}
	if tl.Split != nil {
		p("\n%s\n", splitLine(tl.Split, "compactions wrote more than "+mib(CompactingBytes)))
	}
	if tl.SplitRunning != nil {
		p("\n%s\n", splitLine(tl.SplitRunning, "a compaction ran (compaction tables > 0 at either scrape) or finished"))
	}
	if tl.SplitGC != nil {
		p("\n%s\n", splitLine(tl.SplitGC, "sketchd's Go GC finished a cycle (`go_gc_duration_seconds_count` grew)"))
	}
	if tl.SplitMinute != nil {
		p("\n%s\n", splitLine(tl.SplitMinute, fmt.Sprintf("a wall-clock minute began less than %d s before (the 1-minute panes' ranges move and the pane that turned final is read)", MinuteSeconds)))
	}
	if tl.SplitQuarter != nil {
		p("\n%s\n", splitLine(tl.SplitQuarter, fmt.Sprintf("a wall-clock quarter hour began less than %d s before (the rollup blocks, and at an hour the tier's hours, inside the windows of a moving from change: new pieces)", QuarterSeconds)))
	}
	if tl.SplitFirstMinute != nil {
		p("\n%s\n", splitLine(tl.SplitFirstMinute, "the phase was in its first minute (sketchd computes a question's next windows ahead only after it has seen the question move, so the phase's first clock move is never predicted; the later seconds are the steady state)"))
	}
}

// toolName is the load tool's command in a phase's Tool ("k6 dashboard":
// k6).
func toolName(tool string) string {
	name, _, _ := strings.Cut(tool, " ")
	return name
}

// slowestSeconds returns up to n seconds with requests, highest p99
// first (earlier first among equals).
func slowestSeconds(secs []Second, n int) []Second {
	var out []Second
	for _, s := range secs {
		if s.Requests > 0 {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Second) int { return cmp.Compare(b.P99, a.P99) })
	return out[:min(n, len(out))]
}

// splitLine is the report's verdict on compactions and the tail: the
// seconds in which what happened against the others.
func splitLine(sp *CompactionSplit, what string) string {
	side := func(s SplitSide) string {
		if s.Requests == 0 {
			return fmt.Sprintf("no requests (%d s)", s.Seconds)
		}
		return fmt.Sprintf("p99 %.2f ms over %s requests in %d s", s.P99, thousands(int64(s.Requests)), s.Seconds)
	}
	line := fmt.Sprintf("Seconds in which %s: %s; the other seconds: %s", what, side(sp.Compacting), side(sp.Quiet))
	if sp.Unsampled > 0 {
		line += fmt.Sprintf("; %d s with requests but no store figures left out", sp.Unsampled)
	}
	return line + "."
}

// renderStoreOnly sums up a phase without per-request latencies.
func renderStoreOnly(p func(string, ...any), tl *Timeline) {
	var comp, commit, gc int64
	var cpu float64
	busy := 0
	var worst Second
	for _, s := range tl.Seconds {
		if !s.Store {
			continue
		}
		comp, commit, gc, cpu = comp+s.CompactionBytes, commit+s.CommitBytes, gc+s.GCCycles, cpu+s.CPU
		if s.CompactionBytes > CompactingBytes {
			busy++
		}
		if s.CompactionBytes > worst.CompactionBytes {
			worst = s
		}
	}
	p("No per-request latencies to join. Over those seconds compactions wrote %s (more than %s in %d of them",
		mib(comp), mib(CompactingBytes), busy)
	if worst.CompactionBytes > 0 {
		p("; the most, %s, at %s", mib(worst.CompactionBytes), worst.At.Format("15:04:05"))
	}
	p("), commits %s; %d GC cycles; sketchd used %.1f CPU seconds.\n", mib(commit), gc, cpu)
}

// allocLine says what sketchd allocated between the phase's first and last
// scrapes and how many GC cycles that took: with the heap's goal at the
// memory limit, the bytes allocated are what sets how often a cycle's mark
// takes the CPUs (docs/operations.md, "What the query load allocates").
// "" without two scrapes that have the figure, or when a counter went back.
func allocLine(samples []StoreSample, requests int) string {
	if len(samples) < 2 {
		return ""
	}
	a, b := samples[0], samples[len(samples)-1]
	bytes, gc, secs := b.Alloc-a.Alloc, b.GCCycles-a.GCCycles, b.At.Sub(a.At).Seconds()
	if a.Alloc == 0 || bytes <= 0 || gc < 0 || secs <= 0 {
		return ""
	}
	line := fmt.Sprintf("sketchd allocated %s in the %.0f s between the first and the last scrape (%s/s", mib(bytes), secs, mib(int64(float64(bytes)/secs)))
	if requests > 0 {
		line += fmt.Sprintf(", %.1f KB per request of the phase, ingestion's allocations included", float64(bytes)/float64(requests)/1e3)
	}
	line += fmt.Sprintf(") and its GC ran %d cycles", gc)
	if gc > 0 {
		line += fmt.Sprintf(", one per %s allocated", mib(bytes/gc))
	}
	line += " (`go_memstats_alloc_bytes_total`, `go_gc_duration_seconds_count`)."
	if gcCPU, cpu := b.GCCPU-a.GCCPU, b.CPU-a.CPU; a.GCCPU > 0 && gcCPU >= 0 && cpu > 0 {
		line += fmt.Sprintf(" The runtime puts its collector at %.2f CPU s (%.0f%% of the %.2f s sketchd used), %.2f s of it idle mark workers"+
			" (`go_cpu_classes_gc_total_cpu_seconds_total`, `go_cpu_classes_gc_mark_idle_cpu_seconds_total`, `process_cpu_seconds_total`).",
			gcCPU, 100*gcCPU/cpu, cpu, b.GCIdle-a.GCIdle)
	}
	return line + heapRoom(samples)
}

// heapRoom says, over the scrapes that have the figures, how far the
// heap goal stood above the live heap and what else took the limit's
// room: the cycle's room, which with the bytes allocated sets how often
// cycles come (docs/operations.md, "What the collector costs"). "" when
// no scrape has them.
func heapRoom(samples []StoreSample) string {
	var live, goal, room, slack []int64
	for _, s := range samples {
		if s.HeapGoal > 0 {
			live, goal = append(live, s.HeapLive), append(goal, s.HeapGoal)
			room, slack = append(room, s.HeapGoal-s.HeapLive), append(slack, s.HeapSlack)
		}
	}
	if len(goal) == 0 {
		return ""
	}
	span := func(v []int64) string { return mib(slices.Min(v)) + " to " + mib(slices.Max(v)) }
	return fmt.Sprintf(" Over %d scrapes the live heap the last cycle marked was %s, the heap goal %s, the goal above the live heap by %s, and %s sat free in spans that hold objects"+
		" (`go_gc_heap_live_bytes`, `go_gc_heap_goal_bytes`, `go_memstats_heap_inuse_bytes` less `go_memstats_heap_alloc_bytes`).",
		len(goal), span(live), span(goal), span(room), span(slack))
}
