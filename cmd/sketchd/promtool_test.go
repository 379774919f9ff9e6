package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promtoolPath finds Prometheus's promtool, or fails the test saying how
// to install it: the test never skips quietly.
func promtoolPath(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		tb.Fatal("TestPromtool needs promtool (Debian package prometheus) and none is installed. " +
			"Install it: apt-get update && apt-get install -y --no-install-recommends prometheus   (as root; .ci/run does this on CI, with a policy-rc.d that keeps the package's server from starting)")
	}
	return p
}

// promtoolV1Answer is the part of a /v1 answer TestPromtool compares.
type promtoolV1Answer struct {
	Groups []promtoolV1Group `json:"groups"`
}

type promtoolV1Group struct {
	Key     map[string]string `json:"key"`
	Windows []struct {
		End       time.Time `json:"end"`
		Events    uint64    `json:"events"`
		Distinct  struct{ Estimate float64 }
		Quantiles []struct{ Value float64 }
	} `json:"windows"`
}

// promSeriesJSON is a series as promtool -o json prints it.
type promSeriesJSON struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"` // range
	Value  [2]any            `json:"value"`  // instant
}

// TestPromtool runs Prometheus's own client, promtool, against the real
// binary: range and instant queries, series and label values. Every number
// must equal the /v1 answer for the same window. With a read token set,
// the range query sends it as Grafana does (Authorization: Bearer); the
// other promtool query commands of Debian's 2.42 have no --header flag, so
// a second run without a token serves them.
func TestPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and promtool")
	}
	promtool := promtoolPath(t)
	dir := t.TempDir()
	const token = "promtool-read-token"
	p := startWithConfig(t, dir, e2eConfig, "--read-token", token)

	// An hour of events, two hours ago (inside retention), seeded.
	seed := uint64(17)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	const n = 6000
	_, js := p.connect(t)
	ctx := context.Background()
	for i := range n {
		b, _ := json.Marshal(e2eEvent{
			TS:      base.Add(time.Duration(i) * time.Hour / n).UnixMilli(),
			Country: []string{"DE", "FR", "US"}[rng.IntN(3)],
			User:    fmt.Sprint("u", rng.IntN(2000)),
			URL:     fmt.Sprint("/p/", rng.IntN(8)*rng.IntN(8)),
			MS:      float64(rng.IntN(5000)) / 10,
		})
		if _, err := js.Publish(ctx, "e2e.js", b); err != nil {
			t.Fatal(err)
		}
	}
	api := func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, p.httpURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	rfc := func(d time.Duration) string { return url.QueryEscape(base.Add(d).Format(time.RFC3339)) }
	deadline := time.Now().Add(60 * time.Second)
	for {
		var a promtoolV1Answer
		api("/v1/streams/js/aggregates/users?from="+rfc(0)+"&to="+rfc(time.Hour), &a)
		if len(a.Groups) == 1 && a.Groups[0].Windows[0].Events == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all %d events committed within 60s: %+v", n, a)
		}
		time.Sleep(200 * time.Millisecond)
	}

	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(promtool, append([]string{"query"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("promtool query %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	auth := "--header=Authorization: Bearer " + token

	// promtool query range: distinct users by country, merged per window.
	out := run("range", "-o", "json", auth, "--start="+base.Add(10*time.Minute).Format(time.RFC3339),
		"--end="+base.Add(time.Hour).Format(time.RFC3339), "--step=10m",
		p.httpURL, `sum by (country) (sketchd_distinct{stream="js",aggregate="users"})`)
	var matrix []promSeriesJSON
	if err := json.Unmarshal(out, &matrix); err != nil {
		t.Fatalf("promtool range output: %v\n%s", err, out)
	}
	var byCountry promtoolV1Answer
	api("/v1/streams/js/aggregates/users?from="+rfc(0)+"&to="+rfc(time.Hour)+"&step=10m&group_by=country", &byCountry)
	if len(matrix) != 3 || len(byCountry.Groups) != 3 {
		t.Fatalf("range: %d series, /v1 %d groups; want 3 countries:\n%s", len(matrix), len(byCountry.Groups), out)
	}
	for _, s := range matrix {
		i := slices.IndexFunc(byCountry.Groups, func(g promtoolV1Group) bool {
			return g.Key["country"] == s.Metric["country"]
		})
		if i < 0 || s.Metric["stream"] != "js" || s.Metric["aggregate"] != "users" {
			t.Fatalf("series %v: no such /v1 group", s.Metric)
		}
		ws := byCountry.Groups[i].Windows
		if len(s.Values) != len(ws) {
			t.Fatalf("%v: %d samples, /v1 %d windows", s.Metric, len(s.Values), len(ws))
		}
		for j, v := range s.Values {
			ts, val := sampleOf(t, v)
			if !ts.Equal(ws[j].End) || val != ws[j].Distinct.Estimate {
				t.Errorf("%v sample %d: %s %v; /v1 window ending %s: %v", s.Metric, j, ts, val, ws[j].End, ws[j].Distinct.Estimate)
			}
		}
	}

	// Without the token, promtool is refused.
	cmd := exec.Command(promtool, "query", "instant", p.httpURL, "1+1")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "401") {
		t.Errorf("promtool without the token: %v %s, want a 401 failure", err, b)
	}
	p.stop(t)

	// The same data, served without a token.
	p = startWithConfig(t, dir, e2eConfig)

	// promtool query instant: p99 latency of the 5 minutes before time.
	out = run("instant", "-o", "json", "--time="+base.Add(time.Hour).Format(time.RFC3339),
		p.httpURL, `sum(sketchd_quantile{stream="js",aggregate="latency",quantile="0.99"})`)
	var vector []promSeriesJSON
	if err := json.Unmarshal(out, &vector); err != nil {
		t.Fatalf("promtool instant output: %v\n%s", err, out)
	}
	var p99 promtoolV1Answer
	api("/v1/streams/js/aggregates/latency?from="+rfc(55*time.Minute)+"&to="+rfc(time.Hour)+"&q=0.99", &p99)
	if len(vector) != 1 || vector[0].Metric["quantile"] != "0.99" {
		t.Fatalf("instant: %s", out)
	}
	if ts, val := sampleOf(t, vector[0].Value); !ts.Equal(base.Add(time.Hour)) || val != p99.Groups[0].Windows[0].Quantiles[0].Value {
		t.Errorf("instant p99 %s %v; /v1 %v", ts, val, p99.Groups[0].Windows[0].Quantiles[0].Value)
	}

	// promtool query labels and series: what Grafana's query editor asks.
	out = run("labels", "-o", "json", p.httpURL, "country")
	var countries []string
	if err := json.Unmarshal(out, &countries); err != nil || !slices.Equal(countries, []string{"DE", "FR", "US"}) {
		t.Errorf("promtool query labels country: %s (%v), want DE FR US", out, err)
	}
	out = run("series", "-o", "json", "--match="+`sketchd_count{stream="js",country=~"DE|FR"}`, p.httpURL)
	var series []map[string]string
	if err := json.Unmarshal(out, &series); err != nil || len(series) != 2 {
		t.Errorf("promtool query series: %s (%v), want the DE and FR keys", out, err)
	}

	// Nothing to answer is an empty answer, as Prometheus gives it: sum
	// over a selection without series (before: one sample 0), and the
	// values of a label over a day without data (before: null, which
	// promtool failed to decode).
	out = run("instant", "-o", "json", "--time="+base.Add(time.Hour).Format(time.RFC3339),
		p.httpURL, `sum(sketchd_count{stream="js",country="XX"})`)
	if strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("promtool query instant, sum over no series: %s, want []", out)
	}
	out = run("range", "-o", "json", "--start="+base.Add(10*time.Minute).Format(time.RFC3339),
		"--end="+base.Add(time.Hour).Format(time.RFC3339), "--step=10m",
		p.httpURL, `sum(sketchd_count{stream="js",country="XX"})`)
	if strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("promtool query range, sum over no series: %s, want []", out)
	}
	out = run("labels", "-o", "json", "--start="+base.Add(-72*time.Hour).Format(time.RFC3339),
		"--end="+base.Add(-48*time.Hour).Format(time.RFC3339), p.httpURL, "country")
	if strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("promtool query labels country over a day without data: %s, want []", out)
	}
	p.stop(t)
}

// sampleOf reads [seconds, "value"].
func sampleOf(tb testing.TB, p [2]any) (time.Time, float64) {
	tb.Helper()
	sec, ok := p[0].(float64)
	s, ok2 := p[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if !ok || !ok2 || err != nil {
		tb.Fatalf("sample %v", p)
	}
	return time.UnixMilli(int64(sec * 1000)).UTC(), v
}
