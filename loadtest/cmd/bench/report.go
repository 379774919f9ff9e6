package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

// Target is one goal of the benchmark and whether the run met it.
type Target struct {
	Name     string
	Goal     string
	Measured string
	Met      bool
}

// Targets evaluates the goals of issue #8 on the results: ingest at least
// 70% of the transport's ceiling, query p99 ≤ 10 ms at 1,000 req/s on
// 1-hour windows while ingesting, no errors, and accuracy within the
// sketches' stated bounds.
func (r *Results) Targets() []Target {
	var ts []Target
	ratio := func(name string, in Ingest, c Ceiling) {
		q := safeDiv(in.Rate, c.Rate)
		ts = append(ts, Target{name, "≥ 70% of the transport's ceiling",
			fmt.Sprintf("%s / %s = %.0f%%", rate(in.Rate), rate(c.Rate), 100*q), q >= 0.7})
	}
	ratio("ingest, core NATS", r.IngestCore, r.CeilingCore)
	ratio("ingest, JetStream", r.IngestJS, r.CeilingJS)
	if r.TierCost != nil {
		ts = append(ts, r.TierCost.target())
	}
	for _, q := range []*QueryLoad{r.Vegeta, r.K6} {
		if q == nil {
			continue
		}
		for _, rg := range []struct {
			name, what string
			ms         float64
		}{{"1h", "1-hour", 10}, {"24h", "24-hour", 50}, {"30d", "30-day", 50}} {
			l, ok := q.ByRange[rg.name]
			measured := fmt.Sprintf("%.2f ms", l.P99)
			if !ok {
				measured = "not measured"
			}
			ts = append(ts, Target{fmt.Sprintf("%s: query p99, %s ranges", q.Tool, rg.what),
				fmt.Sprintf("≤ %.0f ms at %d req/s while ingesting", rg.ms, q.Rate), measured, ok && l.P99 <= rg.ms})
		}
		ts = append(ts, Target{q.Tool + ": errors", "0", fmt.Sprintf("%d of %d", q.All.Errors, q.All.Requests), q.All.Errors == 0})
		if q.Tool == "k6" {
			ts = append(ts, Target{"k6: dropped arrivals", "0", fmt.Sprint(q.Dropped), q.Dropped == 0})
		}
	}
	if d := r.Dashboard; d != nil {
		ts = append(ts, Target{"dashboard: query p99", fmt.Sprintf("≤ %d ms, %s", DashboardP99MS, dashboardWhat(r.Config)),
			fmt.Sprintf("%.2f ms", d.All.P99), d.All.P99 <= DashboardP99MS})
		ts = append(ts, Target{"dashboard: errors", "0", fmt.Sprintf("%d of %d", d.All.Errors, d.All.Requests), d.All.Errors == 0})
	} else if r.Vegeta != nil {
		ts = append(ts, Target{"dashboard: query p99", fmt.Sprintf("≤ %d ms", DashboardP99MS), "not measured (k6 skipped)", false})
	}
	if len(r.Phases) > 0 {
		peak := PeakOverRun(r.Phases)
		goal := "≤ 400 MiB at the default settings"
		if b := r.Box; b != nil {
			goal += fmt.Sprintf(", sketchd in a memory cgroup of %s (--memory-box: the kernel reclaims its file pages at the limit)", mib(b.Limit))
		}
		ts = append(ts, Target{"peak RSS over the whole run", goal, mib(peak) + " (per phase: section 5)", peak <= 400<<20})
	}
	if b := r.Box; b != nil {
		ts = append(ts, Target{"small box: no OOM kill", fmt.Sprintf("0, sketchd at its defaults in a memory cgroup of %s", mib(b.Limit)),
			fmt.Sprintf("%s OOM kills; the box's peak charge %s, the limit met %s times", counter(b.OOMKills), mibOrUnknown(b.Peak), counter(b.LimitHits)), b.OOMKills == 0})
	}
	if h := r.Heavy; h != nil {
		ts = append(ts, heavyTargets(h)...)
	}
	ts = append(ts, Target{"core NATS drops", "0", fmt.Sprint(r.IngestCore.Dropped), r.IngestCore.Dropped == 0})
	a := r.Accuracy
	ts = append(ts,
		Target{"exact event counts", "every window equal to the truth",
			fmt.Sprintf("%d of %d windows, %d missing", a.EventsExact, a.Windows, a.Missing), a.Windows > 0 && a.EventsExact == a.Windows && a.Missing == 0},
		Target{"HLL: truth inside [lower, upper]", "≈ 95% (stated confidence; ≥ 90% passes)",
			fmt.Sprintf("%.1f%% of %d", 100*a.HLL.Coverage(), a.HLL.N), a.HLL.N > 0 && a.HLL.Coverage() >= 0.90},
		Target{"count-min: true ≤ estimate ≤ true + εN", "≥ 99% (1−δ; ≥ 98% passes), never below",
			fmt.Sprintf("%.2f%% of %d, %d below", 100*a.CMS.Coverage(), a.CMS.N, a.CMSUnder), a.CMS.N > 0 && a.CMS.Coverage() >= 0.98 && a.CMSUnder == 0},
		Target{"t-digest: rank error ≤ stated rank_error", "≥ 99% of quantiles (stated rank_error_confidence)",
			fmt.Sprintf("%.2f%% of %d", 100*a.Quantile.Coverage(), a.Quantile.N), a.Quantile.N > 0 && a.Quantile.Coverage() >= 0.99},
		Target{"t-digest: true rank in [lower, upper] (rank=)", "≥ 99% of ranks (stated rank_error_confidence)",
			fmt.Sprintf("%.2f%% of %d", 100*a.Rank.Coverage(), a.Rank.N), a.Rank.N > 0 && a.Rank.Coverage() >= 0.99},
		Target{"t-digest: true trimmed mean in [lower, upper] (trim=)", "≥ 99% (stated rank_error_confidence)",
			fmt.Sprintf("%.2f%% of %d", 100*a.Trimmed.Coverage(), a.Trimmed.N), a.Trimmed.N > 0 && a.Trimmed.Coverage() >= 0.99},
		Target{"t-digest: true mean in [lower, upper]", "every window",
			fmt.Sprintf("%d of %d", a.Mean.Within, a.Mean.N), a.Mean.N > 0 && a.Mean.Within == a.Mean.N},
		Target{"multi-aggregate answers equal the single ones", "every window",
			fmt.Sprintf("%d of %d", a.Multi.Within, a.Multi.N), a.Multi.N > 0 && a.Multi.Within == a.Multi.N},
		Target{"theta: truth inside [lower, upper]", "≈ 95% (stated confidence; ≥ 90% passes)",
			fmt.Sprintf("%.1f%% of %d", 100*a.Theta.Coverage(), a.Theta.N), a.Theta.N > 0 && a.Theta.Coverage() >= 0.90},
		Target{"ddsketch: relative error ≤ α", "every quantile",
			fmt.Sprintf("%.1f%% of %d", 100*a.DDSketch.Coverage(), a.DDSketch.N), a.DDSketch.N > 0 && a.DDSketch.Within == a.DDSketch.N},
		Target{"reservoir: population = events", "every window",
			fmt.Sprintf("%d of %d", a.Reservoir.Within, a.Reservoir.N), a.Reservoir.N > 0 && a.Reservoir.Within == a.Reservoir.N},
		Target{"backfill accounting", "too late = generated late, invalid = generated invalid",
			fmt.Sprintf("too late %d/%d, invalid %d/%d, applied %d/%d", r.Accounting.SkTooLate, r.Accounting.Late,
				r.Accounting.SkInvalid, r.Accounting.Invalid, r.Accounting.SkApplied, r.Accounting.TruthEvent),
			r.Accounting.SkTooLate == r.Accounting.Late && r.Accounting.SkInvalid == r.Accounting.Invalid && r.Accounting.SkApplied == r.Accounting.TruthEvent},
	)
	return ts
}

// Missed returns the names of the targets not met.
func (r *Results) Missed() []string {
	var out []string
	for _, t := range r.Targets() {
		if !t.Met {
			out = append(out, t.Name)
		}
	}
	return out
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// rate formats events or messages per second: 123,456/s.
func rate(v float64) string { return thousands(int64(math.Round(v))) + "/s" }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// summaryText is the short result printed at the end of a run.
func summaryText(r *Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nsketchd benchmark (%s, %s)\n", mode(r.Config), r.Elapsed.Round(time.Second))
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "  %-45s %-40s met: %v\n", t.Name, t.Measured, t.Met)
	}
	return b.String()
}

func mode(c Config) string {
	if c.Quick {
		return "--quick"
	}
	return "full"
}

// RenderMarkdown renders the report (docs/benchmarks.md).
func RenderMarkdown(r *Results) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	dirty := ""
	if m.Dirty {
		dirty = " (with uncommitted changes)"
	}
	p("# Benchmarks\n\n")
	p("Written by the benchmark runner, `go run ./loadtest/cmd/bench` (`make bench`; %s run), on %s in %s.\n",
		mode(r.Config), r.Started.Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second))
	p("Do not edit by hand: run it again. How it measures: [loadtest/README.md](../loadtest/README.md).\n\n")
	p("- commit `%s`%s\n", m.Commit, dirty)
	p("- machine: %s, %d CPUs (nproc), %s RAM, Linux %s, %s\n", m.CPU, m.NProc, m.MemTotal, m.Kernel, m.GoVersion)
	p("- load average (1, 5, 15 min) at the start: %s; at the end: %s\n", m.LoadStart, m.LoadEnd)
	p("- tools:")
	for i, t := range r.Tools {
		if i > 0 {
			p(";")
		}
		p(" %s %s", t.Name, t.Version)
		if t.Install > 0 {
			p(" (go install took %s)", t.Install.Round(time.Second))
		}
	}
	p("\n\n")
	p("sketchd, the embedded nats-server (inside sketchd's process), the publisher and the load tools\n")
	p("all share the machine's cores, with whatever else ran on it (the load average above): the rates\n")
	p("vary by tens of percent from run to run, so compare runs taken back to back.\n\n")

	p("## Targets\n\n| target | goal | measured | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets() {
		p("| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, yes(t.Met))
	}

	p("\n## 1–2. Ingest against the transport's ceiling\n\n")
	p("Events are the generator's page views, %d bytes on average, one per message; `nats bench` uses\n", r.MsgSize)
	p("messages of the same size, against sketchd's embedded nats-server. sketchd's rate is read from its own\n")
	p("`/metrics` (`sketchd_events_total` + `sketchd_invalid_events_total` of the stream, polled every 50 ms):\n")
	p("the events processed divided by the time from the first publish (core) or from creating the stream\n")
	p("over a pre-filled JetStream stream (JetStream) to the last event processed. The stream has the four\n")
	p("aggregates (hll, cms, tdigest, reservoir, default parameters), keyed by country and device, 1-minute panes.\n\n")
	p("| mode | transport ceiling (nats bench) | sketchd | ratio | events | dropped | publisher |\n|---|---|---|---|---|---|---|\n")
	p("| core NATS | %s | %s | %.0f%% | %s | %d | %s |\n", rate(r.CeilingCore.Rate), rate(r.IngestCore.Rate),
		100*safeDiv(r.IngestCore.Rate, r.CeilingCore.Rate), thousands(int64(r.IngestCore.Events)), r.IngestCore.Dropped, rate(r.IngestCore.PubRate))
	p("| JetStream | %s | %s | %.0f%% | %s | – | %s (pre-filled) |\n", rate(r.CeilingJS.Rate), rate(r.IngestJS.Rate),
		100*safeDiv(r.IngestJS.Rate, r.CeilingJS.Rate), thousands(int64(r.IngestJS.Events)), rate(r.IngestJS.PubRate))
	p("| JetStream, publishing and consuming at once (backfill) | – | %s | – | %s | – | %s |\n\n",
		rate(r.Backfill.Rate), thousands(int64(r.Backfill.Events)), rate(r.Backfill.PubRate))
	if r.TierCost != nil {
		renderTierCost(p, r.TierCost)
	}

	p("## 3. Query latency while ingesting\n\n")
	p("Fixed arrival rate (open model) over the query mix of `loadtest/querymix` (every kind, single key\n")
	p("and where-filters, group_by, series with step; 82%% of requests over the last hour, 18%% over the\n")
	p("last 24 hours), while a publisher ingests %s events/s into the queried stream (it published\n", thousands(int64(r.Config.LiveRate)))
	p("%s events at %s; sketchd processed them at %s). The stream holds the %s-event backfill over the last %s.\n\n",
		thousands(int64(r.Live.Events)), rate(r.Live.PubRate), rate(r.Live.Rate), thousands(int64(r.Backfill.Events)), r.Config.BackSpan)
	p("| tool | range | requests | errors | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|---|\n")
	for _, q := range []*QueryLoad{r.Vegeta, r.K6, r.LowRate} {
		if q == nil {
			continue
		}
		row := func(name string, l Latency) {
			reqs, errs := thousands(int64(l.Requests)), fmt.Sprint(l.Errors)
			if l.Requests == 0 {
				reqs, errs = "–", "–"
			}
			p("| %s | %s | %s | %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n", q.Tool, name, reqs, errs, l.P50, l.P90, l.P99, l.Max)
		}
		row(fmt.Sprintf("all, %d req/s for %s", q.Rate, q.Duration), q.All)
		for _, rg := range querymix.Ranges {
			if l, ok := q.ByRange[rg]; ok {
				if q.Tool == "k6" {
					l.Requests, l.Errors = 0, 0 // k6 exports no per-tag counts
				}
				row(rg, l)
			}
		}
	}
	renderFloor(p, r)
	if len(r.Service) > 0 {
		mean := MeanServiceMS(r.Service)
		p("\nWhat each request costs: every query of the mix sent alone, one at a time, %d times after a warm-up,\n", r.Service[0].Latency.Requests)
		p("during the same ingest. The mix-weighted mean is %.2f ms, so one core serves about %.0f requests/s of\n", mean, safeDiv(1000, mean))
		p("this mix; the last row of the table above is vegeta at half that (%d req/s).\n", LowRate(r.Service))
		p("%s\n\n", cachingText)
		p("| query | range | weight | p50 | p99 | mean |\n|---|---|---|---|---|---|\n")
		for _, st := range r.Service {
			p("| %s | %s | %d | %.2f ms | %.2f ms | %.2f ms |\n", st.Name, st.Range, st.Weight, st.Latency.P50, st.Latency.P99, st.Latency.Mean)
		}
	}
	if mean := MeanServiceMS(r.Service); mean > 0 && float64(r.Config.QueryRate)*mean/1000 > float64(r.Machine.NProc) {
		p("\nAt %d req/s this mix needs about %.0f cores of query work (rate × mean service time) on a %d-core machine:\n",
			r.Config.QueryRate, float64(r.Config.QueryRate)*mean/1000, r.Machine.NProc)
		p("the requests queue until they time out, which is what the errors at that rate are (see the notes).\n")
	}
	if r.K6 != nil {
		p("\nk6 thresholds (p99 < 10 ms for 1h, < 50 ms for 24h and 30d, errors < 0.1%%, no dropped arrivals): %s; dropped arrivals: %d.\n",
			map[bool]string{true: "passed", false: "**crossed** (k6 exit code 99)"}[r.K6.ThresholdsOK], r.K6.Dropped)
		if r.K6.PerRequest {
			p("k6 wrote each request's samples to a CSV in this run (`--k6-requests`, for its timeline second by second): its latencies include that cost, so they are not the targets' measure.\n")
			if r.K6.RequestsError != "" {
				p("Its CSV could not be read: %s.\n", r.K6.RequestsError)
			}
		}
	} else {
		p("\nk6 was skipped (--skip-k6).\n")
	}

	renderDashboard(p, r)
	renderTimelines(p, r)
	renderProfiles(p, r)

	a := r.Accuracy
	p("\n## 4. Accuracy against the generator's truth\n\n")
	p("The backfill (%s events dated over the last %s, 1%% dated 10 minutes late, 0.5%% invalid) is\n",
		thousands(int64(r.Backfill.Events)), r.Config.BackSpan)
	p("recorded exactly by the generator per pane and key; after the last event is committed, the runner\n")
	p("queries %s .. %s (%d queries: per hour and country, the whole range under where-filters, and\n",
		r.AccuracyFrom.Format(time.RFC3339), r.AccuracyTo.Format(time.RFC3339), len(r.AccuracyPaths))
	p("30 single-key 1-minute panes) and compares every window with the truth over the same panes and keys.\n\n")
	p("| sketch | measure | n | mean | max | within the stated bound |\n|---|---|---|---|---|---|\n")
	p("| hll | relative error of distinct (stated RSE %.4f, 95%% interval) | %d | %.4f | %.4f | %.1f%% (truth in [lower, upper]) |\n",
		a.HLLRSE, a.HLL.N, a.HLL.Mean(), a.HLL.Max, 100*a.HLL.Coverage())
	p("| hll | the same, true distinct ≥ 10,000 (where the sketch estimates) | %d | %.4f | %.4f | %.1f%% |\n",
		a.HLLLarge.N, a.HLLLarge.Mean(), a.HLLLarge.Max, 100*a.HLLLarge.Coverage())
	p("| cms | overestimate / εN (top items and 16 fixed items; largest overestimate %d) | %d | %.4f | %.4f | %.2f%% (≤ εN); %d below the truth |\n",
		a.MaxOver, a.CMS.N, a.CMS.Mean(), a.CMS.Max, 100*a.CMS.Coverage(), a.CMSUnder)
	p("| cms | top-%d recall (ties at the k-th count count as top) | %d | %.4f | min %.4f | %.1f%% windows with recall 1 |\n",
		a.K, a.TopK.N, a.TopK.Mean(), a.TopK.Min, 100*a.TopK.Coverage())
	p("| tdigest | rank error of q = 0.01 … 0.999 (stated rank_error: mean %.4f, largest %.4f) | %d | %.5f | %.5f | %.1f%% (≤ rank_error) |\n",
		safeDiv(a.RankBounds, float64(a.Quantile.N)), a.MaxRankBound, a.Quantile.N, a.Quantile.Mean(), a.Quantile.Max, 100*a.Quantile.Coverage())
	p("| tdigest | rank= x: \\|fraction − true fraction\\| (x = 10 … 500 ms) | %d | %.5f | %.5f | %.2f%% (truth in [lower, upper]) |\n",
		a.Rank.N, a.Rank.Mean(), a.Rank.Max, 100*a.Rank.Coverage())
	p("| tdigest | trim= 0, 0.01, 0.05, 0.25: relative error of the trimmed mean | %d | %.5f | %.5f | %.2f%% (truth in [lower, upper]) |\n",
		a.Trimmed.N, a.Trimmed.Mean(), a.Trimmed.Max, 100*a.Trimmed.Coverage())
	p("| tdigest | relative error of the mean | %d | %.2g | %.2g | %.1f%% (truth in [lower, upper]) |\n",
		a.Mean.N, a.Mean.Mean(), a.Mean.Max, 100*a.Mean.Coverage())
	p("| reservoir | population − events | %d | %.2f | %.0f | %.1f%% equal |\n", a.Reservoir.N, a.Reservoir.Mean(), a.Reservoir.Max, 100*a.Reservoir.Coverage())
	p("| theta | relative error of distinct (k = 4096, 95%% interval) | %d | %.4f | %.4f | %.1f%% (truth in [lower, upper]) |\n",
		a.Theta.N, a.Theta.Mean(), a.Theta.Max, 100*a.Theta.Coverage())
	p("| ddsketch | relative error of q = 0.01 … 0.999 vs the exact rank-⌊q(n−1)⌋ value (α = %g) | %d | %.5f | %.5f | %.1f%% (≤ α) |\n",
		a.DDAlpha, a.DDSketch.N, a.DDSketch.Mean(), a.DDSketch.Max, 100*a.DDSketch.Coverage())
	p("| (multi) | windows of one multi-aggregate request (users, urls, latency per hour and country) equal to the single answers | %d | | | %.1f%% equal |\n",
		a.Multi.N, 100*a.Multi.Coverage())
	p("| (all) | exact event count per window | %d | | | %d equal, %d (hour, country) missing |\n\n", a.Windows, a.EventsExact, a.Missing)
	for _, kind := range []string{"hll", "cms", "tdigest", "rank", "trimmed_mean", "mean", "multi", "theta", "ddsketch"} {
		if w, ok := a.Worst[kind]; ok {
			p("Largest miss of %s: %s.\n\n", kind, w)
		}
	}
	ac := r.Accounting
	p("Accounting of the backfill: generated %s events, %s invalid and %s dated late; sketchd counted %s invalid,\n",
		thousands(int64(ac.Published)), thousands(int64(ac.Invalid)), thousands(int64(ac.Late)), thousands(int64(ac.SkInvalid)))
	p("%s too late, %s late but applied, %s future, and applied %s (the truth holds %s).\n\n",
		thousands(int64(ac.SkTooLate)), thousands(int64(ac.SkLateApplied)), thousands(int64(ac.SkFuture)), thousands(int64(ac.SkApplied)), thousands(int64(ac.TruthEvent)))

	p("## 5. Memory and disk\n\n")
	p("RSS of the sketchd process (which embeds nats-server and its JetStream) from /proc/<pid>/status;\n")
	p("disk as allocated blocks (du) of the data dir: `badger/` (panes) and `nats/` (JetStream's copy of the raw\n")
	p("events, kept 24 h). Events are all those sketchd processed so far, every stream; active keys are the\n")
	p("(stream, key) pairs with a pane in the last 26 hours (`/v1/streams/{stream}/keys`); the backfill alone\n")
	p("stored %s (pane, key) pairs.\n\n", thousands(int64(r.PaneKeys)))
	p("| when | events | active keys | open panes | RSS | peak RSS (VmHWM) | RSS per M events | RSS per active key | badger/ | badger per M events | badger per active key | badger per stored (pane, key) | nats/ | nats/ per M events |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Memory {
		me, keys := float64(s.Events)/1e6, float64(s.ActiveKeys)
		p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.0f B | %s | %s |\n", s.Phase, thousands(int64(s.Events)), s.ActiveKeys,
			thousands(int64(s.OpenPanes)), mib(s.RSS), mib(s.HWM), mib(int64(safeDiv(float64(s.RSS), me))), kib(safeDiv(float64(s.RSS), keys)),
			mib(s.Badger), mib(int64(safeDiv(float64(s.Badger), me))), kib(safeDiv(float64(s.Badger), keys)),
			safeDiv(float64(s.Badger), float64(r.PaneKeys)), mib(s.NATS), mib(int64(safeDiv(float64(s.NATS), me))))
	}
	p("\nThe badger-per-(pane, key) figure divides by the backfill's pairs only; the other streams add a few\n")
	p("hundred pairs. RSS includes the Go heap headroom (GOGC), the nats-server, Badger's caches and the\n")
	p("query cache, so it does not scale linearly with events.\n\n")
	renderBox(p, r.Box)
	renderPhases(p, r)
	renderHeavy(p, r)
	renderScaleOut(p)

	p("## Commands\n\n")
	p("The runner, from the repository root:\n\n```sh\ngo run ./loadtest/cmd/bench%s\n```\n\n", map[bool]string{true: " --quick", false: ""}[r.Config.Quick])
	p("What it ran (ports and paths of this run):\n\n```sh\n")
	p("go build -o $TMP/sketchd ./cmd/sketchd\n%s\n", shellLine("sketchd", r.SketchdArgs))
	for _, c := range r.CeilingCore.Commands {
		p("%s\n", c)
	}
	for _, c := range r.CeilingJS.Commands {
		p("%s\n", c)
	}
	for _, in := range []Ingest{r.IngestCore, r.IngestJS, r.LongBackfill, r.Backfill, r.Live} {
		for _, c := range in.Commands {
			p("%s\n", c)
		}
	}
	for _, q := range []*QueryLoad{r.Vegeta, r.K6, r.Dashboard} {
		if q != nil {
			for _, c := range q.Commands {
				p("%s\n", c)
			}
		}
	}
	p("```\n\nThe accuracy queries (paths on the API):\n\n```\n")
	for _, c := range r.AccuracyPaths {
		p("%s\n", c)
	}
	p("```\n\nThe sketchd config (`--config`):\n\n```yaml\n%s```\n", r.ConfigYAML)
	p("\n## Notes\n\n")
	p("- After the load tools had exited, sketchd went on answering /v1 requests for %s (%s requests whose\n", r.Drain.Round(time.Millisecond), thousands(int64(r.DrainRequests)))
	p("  clients had given up); the runner waits for that before stopping it.\n")
	if se := r.SlowErrors; se.Errors > 0 {
		p("- sketchd's log has %s error responses (%s × 504 timeout, %s × 503 client gone or unavailable); %s of them were\n",
			thousands(int64(se.Errors)), thousands(int64(se.Timeouts)), thousands(int64(se.Canceled)), thousands(int64(se.PastDue)))
		p("  written more than 1 s after the 10 s query timeout, the longest after %s: the deadline does not stop\n", se.Longest.Round(100*time.Millisecond))
		p("  the work of a request promptly under overload.\n")
	}
	p("- sketchd stopped on SIGTERM in %s (drain, final flush and commit).\n", r.Shutdown.Round(time.Millisecond))
	{
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func kib(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
