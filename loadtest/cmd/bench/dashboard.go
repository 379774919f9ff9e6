package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

// DashboardP99MS is the dashboard scenario's target: p99 ≤ 20 ms.
const DashboardP99MS = 20

// runDashboard runs loadtest/k6/dashboard.js: vus users each refreshing the
// dashboard of querymix.DashboardOf (10 panels, its filter value: 20 of
// them) every 5 s, for d.
func runDashboard(ctx context.Context, p *procs, k6, dir, base, script string, d querymix.Dashboard, vus int, dur time.Duration) (QueryLoad, error) {
	q := QueryLoad{Tool: "k6 dashboard", Rate: vus * len(d.Panels) / 5, Duration: dur}
	path := filepath.Join(dir, "dashboard.json")
	f, err := os.Create(path)
	if err != nil {
		return q, err
	}
	if err := d.WriteJSON(f); err != nil {
		_ = f.Close()
		return q, err
	}
	if err := f.Close(); err != nil {
		return q, err
	}
	summary := filepath.Join(dir, "k6-dashboard-summary.json")
	// Per-request samples, which k6 at 1,000/s does not write (its CPU on
	// two cores): about 11 rows per request here, at ~100 requests/s.
	// Only the system tags the join needs (k6csv.go).
	perReq := filepath.Join(dir, "k6-dashboard.csv")
	args := []string{"run", "--quiet", "--no-color", "--summary-export", summary,
		"--system-tags", "status,vu,iter", "--out", "csv=fileName=" + perReq + ",timeFormat=unix_micro",
		"-e", "BASE_URL=" + base, "-e", "VUS=" + strconv.Itoa(vus), "-e", "REFRESH=5", "-e", "DURATION=" + dur.String(),
		"-e", "P99_MS=" + strconv.Itoa(DashboardP99MS), "-e", "DASHBOARD=" + path, script}
	q.Commands = []string{
		"go run ./loadtest/cmd/querymix -format dashboard > dashboard.json",
		shellLine("k6", args),
	}
	out, tool, err := p.runCPU(ctx, dur+2*time.Minute, k6, args...)
	q.tool = tool
	fmt.Fprintf(p.log, "%s", out)
	q.ThresholdsOK = err == nil
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 99) {
		return q, err
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		return q, err
	}
	q.All, _, q.Dropped, err = ParseK6Summary(b)
	q.ByRange = map[string]Latency{"1h": q.All}
	if err != nil {
		return q, err
	}
	readDashboardRequests(&q, perReq)
	return q, nil
}

// readDashboardRequests reads k6's per-request CSV output into q: its
// requests for the timeline, the breakdowns per panel and per answer. A
// file it cannot read costs the breakdowns, not the run: the reason is
// kept in RequestsError.
func readDashboardRequests(q *QueryLoad, path string) {
	reqs, err := readK6Requests(path)
	if err != nil {
		q.RequestsError = err.Error()
		return
	}
	q.requests, q.Panels, q.Answers = reqs, byPanel(reqs), byAnswer(reqs)
}

// readK6Requests reads the requests of k6's CSV output at path.
func readK6Requests(path string) ([]request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	reqs, err := parseK6CSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reqs, nil
}

// dashboardFirstLoad asks each of d's questions (every panel for every
// value) once, one at a time, before the users start: a dashboard's first
// load, whose answers the caches have never held (each question's final
// windows are merged from the panes once, then kept). The scenario then
// measures the refreshes, as a benchmark runs its warm-up apart; the first
// load's latency is reported on its own line.
func dashboardFirstLoad(ctx context.Context, c *client, d querymix.Dashboard) (Latency, error) {
	var ds []time.Duration
	errs := 0
	for _, v := range d.Values {
		for _, panel := range d.Panels {
			start := time.Now()
			_, code, err := c.do(ctx, "GET", strings.ReplaceAll(panel.Path, "{v}", url.QueryEscape(v)), nil)
			if ctx.Err() != nil {
				return Latency{}, ctx.Err()
			}
			if err != nil || code != 200 {
				errs++
			}
			ds = append(ds, time.Since(start))
		}
	}
	return Summarize(ds, errs), nil
}
