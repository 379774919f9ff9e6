package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGroupBy: per group, the requests, errors and stale answers, and the
// groups highest p99 first (by name among equals).
func TestGroupBy(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	reqs := []request{
		{Latency: ms(1), Panel: "a", Answer: answerFresh},
		{Latency: ms(9), Panel: "a", Answer: answerStale, Bad: true},
		{Latency: ms(30), Panel: "b", Answer: answerFresh},
		{Latency: ms(2), Panel: "c", Answer: answerUnknown},
		{Latency: ms(9), Panel: "d", Answer: answerStale},
	}
	type row struct {
		name                  string
		requests, errs, stale int
		p99                   float64
	}
	tests := []struct {
		name string
		got  []GroupLatency
		want []row
	}{{
		name: "by panel",
		got:  byPanel(reqs),
		want: []row{{"b", 1, 0, 0, 30}, {"a", 2, 1, 1, 9}, {"d", 1, 0, 1, 9}, {"c", 1, 0, 0, 2}},
	}, {
		name: "by answer",
		got:  byAnswer(reqs),
		want: []row{{answerFresh, 2, 0, 0, 30}, {answerStale, 2, 1, 2, 9}, {answerUnknown, 1, 0, 0, 2}},
	}, {
		name: "no requests",
		got:  byPanel(nil),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []row
			for _, g := range tc.got {
				got = append(got, row{g.Name, g.Requests, g.Errors, g.Stale, g.P99})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// dashboardLoad is the dashboard phase of the fixture with the requests of
// the real k6 run (testdata/k6-dashboard.csv), joined with scrapes of its
// seconds 1796516206-208 of which the middle one had compactions write
// 4 MiB.
func dashboardLoad(t testing.TB) *QueryLoad {
	t.Helper()
	q := &QueryLoad{Tool: "k6 dashboard", Rate: 100, Duration: time.Minute, All: Latency{Requests: 12, Errors: 3}}
	readDashboardRequests(q, filepath.Join("testdata", "k6-dashboard.csv"))
	if q.RequestsError != "" {
		t.Fatal(q.RequestsError)
	}
	var samples []StoreSample
	var s StoreSample
	for i, comp := range []int64{0, 4, 0, 0} {
		s.At = time.Unix(1796516206+int64(i), 12e6)
		samples = append(samples, s)
		s.Compaction += comp << 20
	}
	q.Timeline = BuildTimeline(samples, 0, q.requests, q.requests != nil)
	return q
}

// TestDashboardTimeline: the k6 requests land in the seconds they were
// sent in, and the split pools those of the compacting second against the
// others.
func TestDashboardTimeline(t *testing.T) {
	tl := dashboardLoad(t).Timeline
	var got []int
	for _, s := range tl.Seconds {
		got = append(got, s.Requests)
	}
	if want := []int{4, 4, 4}; !slices.Equal(got, want) {
		t.Errorf("requests per second %v, want %v (rows 1-4, 5-8 and 9-12 of the CSV)", got, want)
	}
	want := &CompactionSplit{Compacting: SplitSide{Seconds: 1, Requests: 4, P99: 38.372184},
		Quiet: SplitSide{Seconds: 2, Requests: 8, P99: 76.628308}}
	checkSplit(t, "split", tl.Split, want)
}

// TestRenderDashboardBreakdown: the dashboard section gets the tables per
// panel and per answer, section 3 the dashboard's slowest seconds; both
// survive the results JSON (--render); results of older runners (no
// breakdown, no latencies) render without them; an unreadable CSV says
// why.
func TestRenderDashboardBreakdown(t *testing.T) {
	r := fixture()
	r.Dashboard = dashboardLoad(t)
	md := RenderMarkdown(r)
	for _, want := range []string{
		"12 requests. Percentiles here are by nearest rank",
		"| slow | 6 | 3 | 2 | 32.67 ms | 76.63 ms | 76.63 ms | 76.63 ms |\n| fast | 6 | 0 | 2 | 3.92 ms | 22.12 ms | 22.12 ms | 22.12 ms |",
		"| stale | 4 | 2 | 4.01 ms | 76.63 ms | 76.63 ms | 76.63 ms |\n| fresh | 8 | 1 | 22.12 ms | 39.80 ms | 39.80 ms | 39.80 ms |",
		"k6 dashboard at 100 req/s for 1m0s: 4 scrapes, 0 failed; 3 seconds with store figures.",
		"| 00:16:48 | 4 | 1 | 3.92 ms | 76.63 ms | 0.0 MiB |",
		"Seconds in which compactions wrote more than 1.0 MiB: p99 38.37 ms over 4 requests in 1 s; the other seconds: p99 76.63 ms over 8 requests in 2 s.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := RenderMarkdown(&back); got != md {
		t.Error("the report rendered from the results JSON differs from the run's")
	}

	old := fixture() // a dashboard phase as older runners wrote it
	old.Dashboard.Timeline = BuildTimeline(r.Dashboard.Timeline.Samples, 0, nil, false)
	md = RenderMarkdown(old)
	if strings.Contains(md, "Per panel and per answer") || !strings.Contains(md, "k6 dashboard at 100 req/s for 1m0s") ||
		!strings.Contains(md, "No per-request latencies to join.") {
		t.Error("older results: want the store's seconds alone and no breakdown")
	}

	bad := &QueryLoad{}
	readDashboardRequests(bad, filepath.Join(t.TempDir(), "missing.csv"))
	old.Dashboard.RequestsError = bad.RequestsError
	if md := RenderMarkdown(old); bad.RequestsError == "" || !strings.Contains(md, "No per-request breakdown: k6's CSV output could not be read (open ") {
		t.Errorf("a missing CSV: error %q not reported", bad.RequestsError)
	}
}
