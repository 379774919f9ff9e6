package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

// cachingText says what the service times of a repeated query measure:
// which of sketchd's caches answer it (docs/architecture.md, "Queries").
const cachingText = `What sketchd caches (docs/architecture.md, "Queries"): the merged sketches of each final window of a
tumbling series, per stream, aggregate, where, group_by, width and window start, kept across commits
(single and multi-aggregate queries); decoded final panes, rollup-tier panes and blocks; the keys of
final spans; and, until the stream's next commit (every flush interval while ingesting), each
answer's result and its rendered JSON. After a commit a repeated query merges again only the windows
that are not final (a whole-range query is one window: all of it), from cached decoded panes where
final, and each key's open panes read once per commit for every question (the tail memo). So repeated sends here measure mostly cached answers
(` + "`go test ./internal/query -run '^$' -bench 'DashboardWhileIngesting|MultiWhileIngesting|TierQuery'`" + `).`

func dashboardWhat(c Config) string {
	d := querymix.DashboardOf("pv")
	return fmt.Sprintf("%d users refreshing %d panels × %d filter values every 5 s, while ingesting",
		c.DashVUs, len(d.Panels), len(d.Values))
}

// renderDashboard writes the dashboard scenario's section.
func renderDashboard(p func(string, ...any), r *Results) {
	d := r.Dashboard
	if d == nil {
		return
	}
	db := querymix.DashboardOf("pv")
	p("\n### Dashboard scenario\n\n")
	p("%d virtual users (k6, `loadtest/k6/dashboard.js`) each watch one dashboard of %d panels over the last hour,\n",
		r.Config.DashVUs, len(db.Panels))
	p("filtered by `%s` (user i: value i mod %d), and refresh all its panels at once (6 connections, as a\n", db.Field, len(db.Values))
	p("browser) every 5 s for %s, while the publisher ingests: %d × %d = %d distinct queries, about %d requests/s.\n\n",
		d.Duration, len(db.Panels), len(db.Values), len(db.Panels)*len(db.Values), d.Rate)
	p("| requests | errors | p50 | p90 | p99 | max | k6 thresholds (p99 < %d ms, errors < 0.1%%) |\n|---|---|---|---|---|---|---|\n", DashboardP99MS)
	p("| %s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |\n\n", thousands(int64(d.All.Requests)), d.All.Errors,
		d.All.P50, d.All.P90, d.All.P99, d.All.Max, map[bool]string{true: "passed", false: "**crossed**"}[d.ThresholdsOK])
	if f := d.FirstLoad; f != nil {
		p("These are the refreshes. Before the users started, the runner asked each of the %d questions once, one\n", f.Requests)
		p("at a time: the dashboard's first load, which merges each question's final windows from the panes (the\n")
		p("caches had never held them): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors.\n\n", f.P50, f.P90, f.P99, f.Max, f.Errors)
	}
	renderBreakdown(p, d)
	p("Panels (`{v}` is the filter value):\n\n")
	for _, q := range db.Panels {
		p("- `%s`\n", q.Path)
	}
}

// renderProfiles writes the top entries of the profiles of the query load.
func renderProfiles(p func(string, ...any), r *Results) {
	if len(r.Profiles) == 0 {
		return
	}
	p("\n### Profiles of the query load\n\n")
	p("sketchd's own pprof (`/debug/pprof`, behind the admin token), taken by the runner while the load ran;\n")
	p("the files are in the temp dir (`--keep`).")
	for _, pr := range r.Profiles {
		if pr.Seconds > 0 && pr.CPU/pr.Seconds < 0.8*float64(r.Machine.NProc) {
			p(" During %s sketchd used %.0f%% of one core of the %d: it was not CPU-bound; the other\n", pr.Name, 100*pr.CPU/pr.Seconds, r.Machine.NProc)
			p("cores' time went to the load tools, the publisher and the machine's other jobs (load average above), so\n")
			p("its requests waited for CPU, which their latency and the 503s (admission queue) show.")
			break
		}
	}
	p(" Top entries:\n")
	for _, pr := range r.Profiles {
		p("\n%s (`%s`)", pr.Name, strings.Replace(pr.Command, pr.Path, "<"+pr.Name+".pprof>", 1))
		if pr.Seconds > 0 {
			p(": %.2f s of CPU sampled in %.2f s, %.0f%% of one core (the machine has %d)", pr.CPU, pr.Seconds, 100*pr.CPU/pr.Seconds, r.Machine.NProc)
		}
		p(":\n\n```\n%s\n```\n", pr.Top)
	}
}

// renderPhases writes the peak RSS per phase.
func renderPhases(p func(string, ...any), r *Results) {
	if len(r.Phases) == 0 {
		return
	}
	p("Peak RSS per phase: the largest VmRSS sampled every 100 ms, and VmHWM after resetting it at the\n")
	p("phase's start (`echo 5 > /proc/<pid>/clear_refs`; \"–\" where the reset failed). Target: ≤ 400 MiB over\n")
	p("the whole run at the default settings (`--memory-limit` default: 3/4 of the cgroup limit, at most 512 MiB).\n\n")
	p("RssAnon is the anonymous part (Go heap, Badger's and nats-server's allocations: what `--memory-limit`\n")
	p("covers); the rest is file pages of Badger's and JetStream's mmapped files, which the kernel reclaims.\n\n")
	p("The store's writes per phase: what the commits wrote and what Badger's compactions rewrote meanwhile\n")
	p("(`sketchd_store_commit_bytes_total`, `sketchd_store_compaction_written_bytes_total`); compactions\n")
	p("take the CPU the queries need (docs/operations.md).\n\n")
	p("The sampled peak's parts: RssAnon in that sample, and the rest (file pages: the binary's 24 MiB or so,\n")
	p("Badger's table pages and memtable logs).\n\n")
	p("| phase | duration | peak RSS (sampled) | its RssAnon + file pages (UTC) | VmHWM in the phase | peak RssAnon (sampled) | commits wrote | compactions wrote |\n|---|---|---|---|---|---|---|---|\n")
	for _, ph := range r.Phases {
		hwm, parts, commits, compactions := "–", "–", "–", "–"
		if ph.HWMReset {
			hwm = mib(ph.HWM)
		}
		if !ph.PeakAt.IsZero() {
			parts = fmt.Sprintf("%s + %s (%s)", mib(ph.AnonAtPeak), mib(ph.PeakRSS-ph.AnonAtPeak), ph.PeakAt.UTC().Format("15:04:05.0"))
		}
		if ph.StoreWrites {
			commits, compactions = mib(ph.CommitBytes), mib(ph.CompactionBytes)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", ph.Phase, ph.Duration.Round(time.Second), mib(ph.PeakRSS), parts, hwm, mib(ph.PeakAnon), commits, compactions)
	}
	p("\n")
}
