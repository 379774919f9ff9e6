package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// testdata/k6-dashboard.csv is the CSV output of a real k6 run (k6 v1.8.1)
// of loadtest/k6/dashboard.js with the runner's options, and
// testdata/k6-dashboard-summary.json the same run's --summary-export:
//
//	python3 testdata/k6-dashboard-stub.py   # prints its port
//	k6 run --quiet --no-color --system-tags status,vu,iter \
//	    --out csv=fileName=k6-dashboard.csv,timeFormat=unix_micro \
//	    --summary-export k6-dashboard-summary.json -e BASE_URL=http://127.0.0.1:<port> \
//	    -e VUS=2 -e REFRESH=1 -e DURATION=3s -e DASHBOARD=testdata/k6-dashboard.json loadtest/k6/dashboard.js
//
// The stub server (not sketchd: the test is of k6's format and the join)
// marks every third answer Sketchd-Stale: true and answers the panel
// "slow" after 30 ms, with 503 for the filter value XX.

// TestParseK6CSVRealRun checks the parse of a real k6 run against that
// run's own summary: as many requests, failures, stale answers (the Rate
// dashboard_stale) and the same slowest and fastest latency.
func TestParseK6CSVRealRun(t *testing.T) {
	reqs := readK6CSV(t, "testdata/k6-dashboard.csv")
	b, err := os.ReadFile("testdata/k6-dashboard-summary.json")
	if err != nil {
		t.Fatal(err)
	}
	all, _, _, err := ParseK6Summary(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseK6SummaryRate(b, "dashboard_stale")
	if err != nil {
		t.Fatal(err)
	}
	bad, stale, unknown := 0, 0, 0
	var ds []time.Duration
	for _, r := range reqs {
		ds = append(ds, r.Latency)
		bad += b2i(r.Bad)
		stale += b2i(r.Answer == answerStale)
		unknown += b2i(r.Answer == answerUnknown)
		if r.Panel != "fast" && r.Panel != "slow" {
			t.Errorf("request %+v: panel %q, want fast or slow", r, r.Panel)
		}
	}
	got := Summarize(ds, bad)
	if got.Requests != all.Requests || got.Errors != all.Errors || stale != s || unknown != 0 {
		t.Errorf("%d requests, %d failed, %d stale, %d unknown; k6's summary: %d, %d, %d stale, 0 unknown",
			got.Requests, got.Errors, stale, unknown, all.Requests, all.Errors, s)
	}
	if got.Max != all.Max {
		t.Errorf("max %.6f ms, k6's summary %.6f ms", got.Max, all.Max)
	}
	// The first row: ended at 1796516206.127559 after 4.413572 ms.
	end := time.UnixMicro(1796516206127559)
	if r := reqs[0]; !r.At.Equal(end.Add(-4413572*time.Nanosecond)) || r.Panel != "fast" || r.Answer != answerFresh || r.Bad {
		t.Errorf("first request %+v, want sent at %s − 4.413572 ms, panel fast, fresh, not failed", r, end)
	}
}

// parseK6SummaryRate returns the passes (true values) of a Rate metric in
// a k6 summary export.
func parseK6SummaryRate(b []byte, metric string) (int, error) {
	var s k6Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, err
	}
	return int(s.num(metric, "passes")), nil
}

func readK6CSV(t testing.TB, path string) []request {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs, err := parseK6CSV(f)
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestParseK6CSV: time formats, the join of dashboard_stale by (vu, iter,
// panel), failures, and the errors of a file that is not k6's CSV.
func TestParseK6CSV(t *testing.T) {
	const head = "metric_name,timestamp,metric_value,status,extra_tags,metadata\n"
	at := time.Date(2026, 12, 5, 21, 0, 1, 0, time.UTC)
	type want struct {
		at      time.Time // sent
		latency time.Duration
		bad     bool
		panel   string
		answer  string
	}
	tests := []struct {
		name    string
		csv     string
		want    []want
		wantErr string
	}{{
		name: "unix micro; the stale sample comes after the request's, other metrics skipped",
		csv: head +
			"http_reqs,1796504401010000,1.000000,200,panel=a&name=a,vu=1&iter=0\n" +
			"http_req_duration,1796504401010000,10.000000,200,name=a&panel=a,vu=1&iter=0\n" +
			"http_req_duration,1796504401020000,5.500000,200,panel=b,iter=0&vu=1\n" +
			"checks,1796504401030000,1.000000,,,vu=1&iter=0\n" +
			"dashboard_stale,1796504401030000,1.000000,,panel=a,vu=1&iter=0\n" +
			"dashboard_stale,1796504401030000,0.000000,,panel=b,vu=1&iter=0\n",
		want: []want{{at, 10 * time.Millisecond, false, "a", answerStale},
			{at.Add(20*time.Millisecond - 5500*time.Microsecond), 5500 * time.Microsecond, false, "b", answerFresh}},
	}, {
		name: "same panel, other user or iteration: joined to its own sample",
		csv: head +
			"dashboard_stale,1796504401000000,1.000000,,panel=a,vu=2&iter=0\n" +
			"http_req_duration,1796504401010000,1.000000,200,panel=a,vu=1&iter=0\n" +
			"http_req_duration,1796504401010000,1.000000,200,panel=a,vu=2&iter=0\n" +
			"http_req_duration,1796504401010000,1.000000,200,panel=a,vu=2&iter=1\n" +
			"dashboard_stale,1796504401000000,0.000000,,panel=a,vu=1&iter=0\n",
		want: []want{{at.Add(9 * time.Millisecond), time.Millisecond, false, "a", answerFresh},
			{at.Add(9 * time.Millisecond), time.Millisecond, false, "a", answerStale},
			{at.Add(9 * time.Millisecond), time.Millisecond, false, "a", answerUnknown}},
	}, {
		name: "without vu and iter no join: unknown",
		csv: "metric_name,timestamp,metric_value,status,extra_tags,metadata\n" +
			"http_req_duration,1796504401010000,1.000000,200,panel=a,\n" +
			"dashboard_stale,1796504401000000,1.000000,,panel=a,\n",
		want: []want{{at.Add(9 * time.Millisecond), time.Millisecond, false, "a", answerUnknown}},
	}, {
		name: "vu and iter as tags (older k6), and failures: 503, network error, no status",
		csv: "metric_name,timestamp,metric_value,status,extra_tags\n" +
			"http_req_duration,1796504401010,1.000000,503,panel=a&vu=1&iter=3\n" +
			"http_req_duration,1796504401010,1.000000,0,panel=a&vu=2&iter=3\n" +
			"http_req_duration,1796504401010,1.000000,,panel=a&vu=3&iter=3\n" +
			"dashboard_stale,1796504401010,1.000000,,panel=a&vu=1&iter=3\n",
		want: []want{{at.Add(9 * time.Millisecond), time.Millisecond, true, "a", answerStale},
			{at.Add(9 * time.Millisecond), time.Millisecond, true, "a", answerUnknown},
			{at.Add(9 * time.Millisecond), time.Millisecond, true, "a", answerUnknown}},
	}, {
		name: "k6's default columns: no status column, no panel, unix seconds",
		csv: "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata\n" +
			"http_req_duration,1796504402,250.000000,,,,true,,GET,x,HTTP/1.1,default,,200,,,http://x,,\n",
		want: []want{{at.Add(750 * time.Millisecond), 250 * time.Millisecond, false, "", answerUnknown}},
	}, {
		name: "rfc3339 and nanoseconds",
		csv: "metric_name,timestamp,metric_value\n" +
			"http_req_duration,2026-12-05T21:00:01.5Z,0.500000\n" +
			"http_req_duration,1796504401500000000,0.500000\n",
		want: []want{{at.Add(500*time.Millisecond - 500*time.Microsecond), 500 * time.Microsecond, false, "", answerUnknown},
			{at.Add(500*time.Millisecond - 500*time.Microsecond), 500 * time.Microsecond, false, "", answerUnknown}},
	}, {
		name: "only a header: no requests",
		csv:  head,
	}, {
		name:    "empty file",
		csv:     "",
		wantErr: "k6 csv header",
	}, {
		name:    "not k6's header",
		csv:     "code,latency\n200,5\n",
		wantErr: "want metric_name, timestamp and metric_value",
	}, {
		name:    "a bad timestamp",
		csv:     head + "http_req_duration,12345,1.0,200,panel=a,vu=1&iter=0\n",
		wantErr: "line 2: timestamp \"12345\": 5 digits",
	}, {
		name:    "a bad latency",
		csv:     head + "http_req_duration,1796504401010000,-1.0,200,panel=a,vu=1&iter=0\n",
		wantErr: "line 2: latency \"-1.0\"",
	}, {
		name:    "a bad stale value",
		csv:     head + "dashboard_stale,1796504401010000,yes,,panel=a,vu=1&iter=0\n",
		wantErr: "line 2: dashboard_stale value",
	}, {
		name:    "a short row",
		csv:     head + "http_req_duration,1796504401010000,1.0\n",
		wantErr: "line 2: 3 fields, the header has 6",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseK6CSV(strings.NewReader(tc.csv))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d requests, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if !g.At.Equal(w.at) || g.Latency != w.latency || g.Bad != w.bad || g.Panel != w.panel || g.Answer != w.answer {
					t.Errorf("request %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
