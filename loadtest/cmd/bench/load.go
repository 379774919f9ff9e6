package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

// QueryLoad is the result of one load tool at a fixed rate.
type QueryLoad struct {
	Tool     string             `json:"tool"`
	Rate     int                `json:"rate"` // requests per second asked
	Duration time.Duration      `json:"duration"`
	All      Latency            `json:"all"`
	ByRange  map[string]Latency `json:"by_range"` // "1h", "24h", "30d" (querymix.Ranges)
	// ThresholdsOK is k6's verdict (exit code 0, not 99); vegeta has none.
	ThresholdsOK bool     `json:"thresholds_ok"`
	Dropped      int      `json:"dropped"` // k6: arrivals it could not start
	Commands     []string `json:"commands"`
	// Timeline is the phase second by second (absent in results of
	// runners before it).
	Timeline *Timeline `json:"timeline,omitempty"`
	// CPU is where the machine's CPU went while the load tool ran
	// (absent in results of runners before it), from tool (set by the
	// run; runner.timed folds in sketchd's scrapes).
	CPU  *PhaseCPU `json:"cpu,omitempty"`
	tool toolRun
	// Panels and Answers break the dashboard's latency down per panel and
	// per answer (fresh, stale, unknown), from k6's per-request CSV
	// output; RequestsError says why there is none when the CSV could not
	// be read. All absent in other phases and in results of runners
	// before them.
	Panels []GroupLatency `json:"panels,omitempty"`
	// FirstLoad is the dashboard's first load (dashboardFirstLoad), before
	// the users start; absent elsewhere and in older results.
	FirstLoad     *Latency       `json:"first_load,omitempty"`
	Answers       []GroupLatency `json:"answers,omitempty"`
	RequestsError string         `json:"requests_error,omitempty"`
	// PerRequest says k6 wrote its per-request CSV at the query rate
	// (--k6-requests): its latencies then include that cost.
	PerRequest bool `json:"per_request,omitempty"`
	// requests are the per-request data (vegeta's, and k6's in the
	// dashboard phase or with --k6-requests), for the timeline (not
	// kept).
	requests []request
}

// vegetaResult is one line of `vegeta encode -to=json`.
type vegetaResult struct {
	Code    int    `json:"code"`
	Latency int64  `json:"latency"` // ns
	Error   string `json:"error"`
	URL     string `json:"url"`
	// Timestamp is when the request was sent: the range of a mix URL
	// (from = now − range) is read against it.
	Timestamp time.Time `json:"timestamp"`
}

// ParseVegetaJSON summarizes `vegeta encode -to=json` output, overall and
// per range of the query mix. A request is an error when it has an error
// or a status outside 2xx.
func ParseVegetaJSON(r io.Reader) (all Latency, byRange map[string]Latency, err error) {
	type acc struct {
		ds   []time.Duration
		errs int
	}
	accs := map[string]*acc{"all": {}}
	err = decodeVegeta(r, func(v vegetaResult) {
		at := v.Timestamp
		if at.IsZero() {
			at = time.Now()
		}
		rng := querymix.RangeAt(v.URL, at)
		if accs[rng] == nil {
			accs[rng] = &acc{}
		}
		bad := v.failed()
		for _, a := range []*acc{accs["all"], accs[rng]} {
			a.ds = append(a.ds, time.Duration(v.Latency))
			if bad {
				a.errs++
			}
		}
	})
	if err != nil {
		return all, nil, err
	}
	byRange = map[string]Latency{}
	for k, a := range accs {
		l := Summarize(a.ds, a.errs)
		if k == "all" {
			all = l
		} else {
			byRange[k] = l
		}
	}
	return all, byRange, nil
}

// failed says whether a request is an error: it has an error or a status
// outside 2xx.
func (v vegetaResult) failed() bool { return v.Error != "" || v.Code < 200 || v.Code > 299 }

// decodeVegeta calls each for every result of `vegeta encode -to=json`
// output.
func decodeVegeta(r io.Reader, each func(vegetaResult)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var v vegetaResult
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("vegeta result: %w", err)
		}
		each(v)
	}
	return sc.Err()
}

// vegetaRequests returns the requests of `vegeta encode -to=json` output:
// when each was sent, its latency and whether it failed.
func vegetaRequests(r io.Reader) ([]request, error) {
	var out []request
	err := decodeVegeta(r, func(v vegetaResult) {
		out = append(out, request{At: v.Timestamp, Latency: time.Duration(v.Latency), Bad: v.failed()})
	})
	return out, err
}

// runVegeta attacks at rate for d with the mix and summarizes the results.
// Its files in dir are named by tag and rate.
func runVegeta(ctx context.Context, p *procs, vegeta, dir, tag, base string, mix []querymix.Query, rate int, d time.Duration) (QueryLoad, error) {
	q := QueryLoad{Tool: "vegeta", Rate: rate, Duration: d}
	targets := filepath.Join(dir, fmt.Sprintf("targets%s-%d.txt", tag, rate))
	f, err := os.Create(targets)
	if err != nil {
		return q, err
	}
	if err := querymix.WriteVegeta(f, mix, base, time.Now()); err != nil {
		_ = f.Close()
		return q, err
	}
	if err := f.Close(); err != nil {
		return q, err
	}
	bin := filepath.Join(dir, fmt.Sprintf("vegeta%s-%d.bin", tag, rate))
	attack := []string{"attack", "-targets", targets, "-rate", strconv.Itoa(rate) + "/s", "-duration", d.String(),
		"-timeout", "10s", "-max-body", "0", "-output", bin}
	q.Commands = []string{
		"go run ./loadtest/cmd/querymix -format vegeta -base " + base + " > targets.txt",
		shellLine("vegeta", attack),
		"vegeta report " + bin,
		"vegeta encode -to json " + bin + "   # per-range percentiles: loadtest/cmd/bench",
	}
	if _, q.tool, err = p.runCPU(ctx, d+2*time.Minute, vegeta, attack...); err != nil {
		return q, err
	}
	if out, err := p.run(ctx, time.Minute, vegeta, "report", bin); err == nil {
		fmt.Fprintf(p.log, "%s", out)
	}
	enc, err := p.run(ctx, 2*time.Minute, vegeta, "encode", "-to", "json", bin)
	if err != nil {
		return q, err
	}
	q.All, q.ByRange, err = ParseVegetaJSON(bytesReader(enc))
	if err == nil {
		q.All.Rate = float64(q.All.Requests) / d.Seconds()
		q.requests, err = vegetaRequests(bytesReader(enc))
	}
	q.ThresholdsOK = true
	return q, err
}

// k6Summary is the part of `k6 run --summary-export` the runner reads.
type k6Summary struct {
	Metrics map[string]map[string]any `json:"metrics"`
}

func (s k6Summary) num(metric, field string) float64 {
	v, _ := s.Metrics[metric][field].(float64)
	return v
}

// ParseK6Summary summarizes a k6 summary export: http_req_duration overall
// and per range tag, http_req_failed, http_reqs and dropped_iterations.
func ParseK6Summary(b []byte) (all Latency, byRange map[string]Latency, dropped int, err error) {
	var s k6Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return all, nil, 0, fmt.Errorf("k6 summary: %w", err)
	}
	if s.Metrics["http_req_duration"] == nil || s.Metrics["http_reqs"] == nil {
		return all, nil, 0, errors.New("k6 summary: no http_req_duration or http_reqs (did any request run?)")
	}
	lat := func(metric string) Latency {
		return Latency{P50: s.num(metric, "med"), P90: s.num(metric, "p(90)"), P99: s.num(metric, "p(99)"),
			Max: s.num(metric, "max"), Mean: s.num(metric, "avg")}
	}
	all = lat("http_req_duration")
	all.Requests = int(s.num("http_reqs", "count"))
	all.Rate = s.num("http_reqs", "rate")
	// http_req_failed is a Rate: "passes" counts the true values, i.e. the
	// failed requests.
	all.Errors = int(s.num("http_req_failed", "passes"))
	byRange = map[string]Latency{}
	for _, r := range querymix.Ranges {
		if m := "http_req_duration{range:" + r + "}"; s.Metrics[m] != nil {
			byRange[r] = lat(m)
		}
	}
	return all, byRange, int(s.num("dropped_iterations", "count")), nil
}

// runK6 runs the k6 script at rate for d. Its files in dir are named by
// tag. With perRequest k6 also writes each request's samples to a CSV
// (k6-requests<tag>.csv), which the phase's timeline then joins second by
// second as vegeta's: for analysis, since the rows (about 11 per request)
// cost k6 CPU on the machine it measures.
func runK6(ctx context.Context, p *procs, k6, dir, tag, base, script string, mix []querymix.Query, rate int, d time.Duration, perRequest bool) (QueryLoad, error) {
	q := QueryLoad{Tool: "k6", Rate: rate, Duration: d}
	mixPath := filepath.Join(dir, "mix"+tag+".json")
	f, err := os.Create(mixPath)
	if err != nil {
		return q, err
	}
	if err := querymix.WriteJSON(f, mix); err != nil {
		_ = f.Close()
		return q, err
	}
	if err := f.Close(); err != nil {
		return q, err
	}
	summary := filepath.Join(dir, "k6-summary"+tag+".json")
	perReq := ""
	if perRequest {
		perReq = filepath.Join(dir, "k6-requests"+tag+".csv")
	}
	args := k6MixArgs(summary, perReq, base, rate, d, mixPath, script)
	q.Commands = []string{shellLine("k6", args)}
	out, tool, err := p.runCPU(ctx, d+2*time.Minute, k6, args...)
	q.tool = tool
	fmt.Fprintf(p.log, "%s", out)
	q.ThresholdsOK = err == nil
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 99) {
		return q, err // not a threshold failure
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		return q, err
	}
	q.All, q.ByRange, q.Dropped, err = ParseK6Summary(b)
	if perReq != "" {
		q.PerRequest = true
		reqs, rerr := readK6Requests(perReq)
		if rerr != nil {
			q.RequestsError = rerr.Error()
		}
		q.requests = reqs
	}
	return q, err
}

// k6MixArgs are the arguments of k6 running queries.js; perReq, when not
// empty, is the path of its per-request CSV output (the system tags the
// parser reads: k6csv.go).
func k6MixArgs(summary, perReq, base string, rate int, d time.Duration, mixPath, script string) []string {
	args := []string{"run", "--quiet", "--no-color", "--summary-export", summary}
	if perReq != "" {
		args = append(args, "--system-tags", "status,vu,iter", "--out", "csv=fileName="+perReq+",timeFormat=unix_micro")
	}
	return append(args, "-e", "BASE_URL="+base, "-e", "RATE="+strconv.Itoa(rate), "-e", "DURATION="+d.String(),
		"-e", "MIX="+mixPath, script)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// ServiceTime is the latency of one query of the mix sent alone, one
// request at a time (no queueing): what a request costs.
type ServiceTime struct {
	Name    string  `json:"name"`
	Range   string  `json:"range"`
	Weight  int     `json:"weight"`
	Latency Latency `json:"latency"`
}

// serviceTimes sends each query of the mix n times in a row (after one
// warm-up request; fewer when a query has taken 5s) and summarizes its
// latencies.
func serviceTimes(ctx context.Context, c *client, mix []querymix.Query, n int) ([]ServiceTime, error) {
	out := make([]ServiceTime, 0, len(mix))
	for _, q := range mix {
		var ds []time.Duration
		errs := 0
		qStart := time.Now()
		for i := 0; i < n+1 && (i < 2 || time.Since(qStart) < 5*time.Second); i++ {
			u := q.URL("", time.Now())
			start := time.Now()
			_, code, err := c.do(ctx, "GET", u, nil)
			d := time.Since(start)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if i == 0 {
				continue // warm-up
			}
			if err != nil || code != 200 {
				errs++
			}
			ds = append(ds, d)
		}
		out = append(out, ServiceTime{Name: q.Name, Range: q.Range, Weight: q.Weight, Latency: Summarize(ds, errs)})
	}
	return out, nil
}

// MeanServiceMS returns the mix-weighted mean service time in ms.
func MeanServiceMS(st []ServiceTime) float64 {
	w, sum := 0, 0.0
	for _, s := range st {
		w += s.Weight
		sum += float64(s.Weight) * s.Latency.Mean
	}
	if w == 0 {
		return 0
	}
	return sum / float64(w)
}

// LowRate returns half the request rate one core could serve at the
// mix's mean service time (at least 5/s): a load the service should carry
// without queueing, to set beside the fixed 1,000/s.
func LowRate(st []ServiceTime) int {
	mean := MeanServiceMS(st)
	if mean <= 0 {
		return 5
	}
	return max(5, int(0.5*1000/mean))
}
