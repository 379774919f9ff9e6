package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestK6PerRequest: with --k6-requests the k6 mix phases write k6's
// per-request CSV (the system tags the parser reads), the runner reads it
// back into requests for the timeline, and the report says that k6's
// latencies then include the CSV's cost; without it k6 writes only its
// summary and the report says nothing of it.
func TestK6PerRequest(t *testing.T) {
	plain := k6MixArgs("/d/s.json", "", "http://127.0.0.1:1", 1000, 30*time.Second, "/d/mix.json", "queries.js")
	if slices.Contains(plain, "--out") || slices.Contains(plain, "--system-tags") {
		t.Errorf("without per-request output: %q", plain)
	}
	per := k6MixArgs("/d/s.json", "/d/k6-requests.csv", "http://127.0.0.1:1", 1000, 30*time.Second, "/d/mix.json", "queries.js")
	i := slices.Index(per, "--out")
	if i < 0 || per[i+1] != "csv=fileName=/d/k6-requests.csv,timeFormat=unix_micro" {
		t.Errorf("per-request output: %q", per)
	}
	if j := slices.Index(per, "--system-tags"); j < 0 || per[j+1] != "status,vu,iter" {
		t.Errorf("system tags: %q", per)
	}
	if per[len(per)-1] != "queries.js" || !slices.Contains(per, "RATE=1000") || !slices.Contains(per, "MIX=/d/mix.json") {
		t.Errorf("script and environment: %q", per)
	}

	reqs, err := readK6Requests(filepath.Join("testdata", "k6-dashboard.csv"))
	if err != nil || len(reqs) == 0 {
		t.Fatalf("readK6Requests: %d requests, %v", len(reqs), err)
	}
	if _, err := readK6Requests(filepath.Join(t.TempDir(), "none.csv")); err == nil {
		t.Error("readK6Requests of a missing file: no error")
	}

	r := fixture()
	r.K6.Timeline = &Timeline{}
	const note = "k6 wrote each request's samples to a CSV in this run (`--k6-requests`"
	const none = "k6 at 1,000/s writes no per-request data"
	if md := RenderMarkdown(r); strings.Contains(md, note) || !strings.Contains(md, none) {
		t.Error("a run without --k6-requests: the report speaks of it, or not of k6's missing requests")
	}
	r.K6.PerRequest, r.K6.RequestsError = true, "k6-requests.csv: truncated"
	md := RenderMarkdown(r)
	if !strings.Contains(md, note) || !strings.Contains(md, "Its CSV could not be read: k6-requests.csv: truncated.") {
		t.Errorf("the report lacks the --k6-requests note: %s", md[strings.Index(md, "k6 thresholds"):][:400])
	}
	if strings.Contains(md, none) || !strings.Contains(md, "k6 at 1,000/s wrote its per-request CSV in this run too") {
		t.Error("a run with --k6-requests: the timeline's text says k6 wrote no per-request data")
	}
}
