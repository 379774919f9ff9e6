package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// The Prometheus API (internal/promapi) through the real router over the
// real Badger store, checked against the /v1 answers for the same data:
// both run the same query engine, so every sample must equal the /v1
// number of the window it stands for.

// promResponse is Prometheus's JSON envelope.
type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

type promResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
	Value  [2]any            `json:"value"`
}

// v1Window is the part of a /v1 window the mapping reads.
type v1Window struct {
	End      time.Time `json:"end"`
	Events   uint64    `json:"events"`
	Distinct *struct {
		Estimate, Lower, Upper float64
	} `json:"distinct"`
	Quantiles []struct {
		Q                   float64
		Value, Lower, Upper *float64
	} `json:"quantiles"`
	Items []struct {
		Item                   string
		Estimate, Lower, Upper uint64
	} `json:"items"`
	Top []struct {
		Item                   string
		Estimate, Lower, Upper uint64
	} `json:"top"`
}

type v1Answer struct {
	Groups []struct {
		Key     map[string]string `json:"key"`
		Windows []v1Window        `json:"windows"`
	} `json:"groups"`
}

// sample is one expected or served sample: the series' extra label
// (quantile or item) and labels, its time and value.
type sample struct {
	series string
	t      int64 // unix ms
	v      float64
}

// promCall runs a Prometheus API request (GET, or POST with a form body).
func (f *fixture) promCall(tb testing.TB, method, path string, form url.Values, hdr ...string) (int, promResponse) {
	tb.Helper()
	var r response
	if method == http.MethodPost {
		r = f.do(tb, method, path, strings.NewReader(form.Encode()), append(hdr, "Content-Type", "application/x-www-form-urlencoded")...)
	} else {
		r = f.do(tb, method, path+"?"+form.Encode(), nil, hdr...)
	}
	var pr promResponse
	if err := json.Unmarshal(r.body, &pr); err != nil {
		tb.Fatalf("%s %s: %v: %s", method, path, err, r.body)
	}
	return r.status, pr
}

// promSamples runs a query and flattens its series into samples.
func (f *fixture) promSamples(tb testing.TB, method, path string, form url.Values) ([]sample, []string) {
	tb.Helper()
	status, pr := f.promCall(tb, method, path, form)
	if status != http.StatusOK || pr.Status != "success" {
		tb.Fatalf("%s %v: %d %+v", path, form, status, pr)
	}
	var res promResult
	if err := json.Unmarshal(pr.Data, &res); err != nil {
		tb.Fatal(err)
	}
	var ss []promSeries
	if err := json.Unmarshal(res.Result, &ss); err != nil {
		tb.Fatal(err)
	}
	var out []sample
	for _, s := range ss {
		id := labelString(s.Metric)
		pts := s.Values
		if res.ResultType == "vector" {
			pts = [][2]any{s.Value}
		}
		for _, p := range pts {
			sec, _ := p[0].(float64)
			v, err := strconv.ParseFloat(p[1].(string), 64)
			if err != nil {
				tb.Fatalf("value %v: %v", p[1], err)
			}
			out = append(out, sample{id, int64(sec * 1000), v})
		}
	}
	return out, pr.Warnings
}

func labelString(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%q,", k, m[k])
	}
	return b.String()
}

// v1Samples runs a /v1 query and maps its windows to samples with fixed
// labels plus the group key, the sample time the window end (or at).
func (f *fixture) v1Samples(tb testing.TB, path string, q url.Values, fixed map[string]string, at int64, value func(w *v1Window, add func(extra string, v float64))) []sample {
	tb.Helper()
	var a v1Answer
	f.getJSON(tb, path+"?"+q.Encode(), &a)
	var out []sample
	for _, g := range a.Groups {
		for i := range g.Windows {
			w := &g.Windows[i]
			t := w.End.UnixMilli()
			if at != 0 {
				t = at
			}
			value(w, func(extra string, v float64) {
				ls := maps.Clone(fixed)
				maps.Copy(ls, g.Key)
				if extra != "" {
					k, val, _ := strings.Cut(extra, "=")
					ls[k] = val
				}
				out = append(out, sample{labelString(ls), t, v})
			})
		}
	}
	return out
}

func sortSamples(s []sample) {
	slices.SortFunc(s, func(a, b sample) int {
		if c := strings.Compare(a.series, b.series); c != 0 {
			return c
		}
		return int(a.t - b.t)
	})
}

func TestPromAPIMatchesV1(t *testing.T) {
	f := newStoreFixture(t)
	unix := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	rfc := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	distinct := func(w *v1Window, add func(string, float64)) { add("", w.Distinct.Estimate) }
	pv := map[string]string{"stream": "pageviews", "aggregate": "users"}
	tests := []struct {
		name    string
		prom    url.Values // query_range (or query with time)
		v1Path  string
		v1      url.Values
		fixed   map[string]string
		value   func(w *v1Window, add func(string, float64))
		instant bool
	}{
		{
			name:   "sum merges all keys",
			prom:   url.Values{"query": {`sum(sketchd_distinct{stream="pageviews",aggregate="users"})`}, "start": {unix(10 * time.Minute)}, "end": {unix(60 * time.Minute)}, "step": {"600"}},
			v1Path: "/v1/streams/pageviews/aggregates/users",
			v1:     url.Values{"from": {rfc(0)}, "to": {rfc(60 * time.Minute)}, "step": {"10m"}},
			fixed:  pv, value: distinct,
		},
		{
			name:   "sum by country with a regex alternation",
			prom:   url.Values{"query": {`sum by (country) (sketchd_distinct{stream="pageviews",aggregate="users",country=~"de|fr"})`}, "start": {unix(30 * time.Minute)}, "end": {unix(90 * time.Minute)}, "step": {"15m"}},
			v1Path: "/v1/streams/pageviews/aggregates/users",
			v1:     url.Values{"from": {rfc(15 * time.Minute)}, "to": {rfc(90 * time.Minute)}, "step": {"15m"}, "where": {"country=de", "country=fr"}, "group_by": {"country"}},
			fixed:  pv, value: distinct,
		},
		{
			name:   `=~".*" (a dashboard variable's All) is no filter`,
			prom:   url.Values{"query": {`sum(sketchd_distinct{aggregate="users",country=~".*"})`}, "start": {unix(60 * time.Minute)}, "end": {unix(120 * time.Minute)}, "step": {"30m"}},
			v1Path: "/v1/streams/pageviews/aggregates/users",
			v1:     url.Values{"from": {rfc(30 * time.Minute)}, "to": {rfc(120 * time.Minute)}, "step": {"30m"}},
			fixed:  pv, value: distinct,
		},
		{
			name:   "sum without device",
			prom:   url.Values{"query": {`sum without (device) (sketchd_distinct_upper{aggregate="users"})`}, "start": {unix(60 * time.Minute)}, "end": {unix(120 * time.Minute)}, "step": {"1h"}},
			v1Path: "/v1/streams/pageviews/aggregates/users",
			v1:     url.Values{"from": {rfc(0)}, "to": {rfc(120 * time.Minute)}, "step": {"1h"}, "group_by": {"country"}},
			fixed:  pv, value: func(w *v1Window, add func(string, float64)) { add("", w.Distinct.Upper) },
		},
		{
			name:   "bare selector: a series per key",
			prom:   url.Values{"query": {`sketchd_distinct_lower{stream="pageviews",aggregate="users",country="de"}`}, "start": {unix(20 * time.Minute)}, "end": {unix(40 * time.Minute)}, "step": {"5m"}},
			v1Path: "/v1/streams/pageviews/aggregates/users",
			v1:     url.Values{"from": {rfc(15 * time.Minute)}, "to": {rfc(40 * time.Minute)}, "step": {"5m"}, "where": {"country=de"}, "group_by": {"country,device"}},
			fixed:  map[string]string{"__name__": "sketchd_distinct_lower", "stream": "pageviews", "aggregate": "users"},
			value:  func(w *v1Window, add func(string, float64)) { add("", w.Distinct.Lower) },
		},
		{
			name:   "quantiles by device",
			prom:   url.Values{"query": {`sum by (device) (sketchd_quantile{stream="pageviews",aggregate="latency",quantile=~"0.5|0.99"})`}, "start": {unix(10 * time.Minute)}, "end": {unix(50 * time.Minute)}, "step": {"10m"}},
			v1Path: "/v1/streams/pageviews/aggregates/latency",
			v1:     url.Values{"from": {rfc(0)}, "to": {rfc(50 * time.Minute)}, "step": {"10m"}, "group_by": {"device"}, "q": {"0.5,0.99"}},
			fixed:  map[string]string{"stream": "pageviews", "aggregate": "latency"},
			value: func(w *v1Window, add func(string, float64)) {
				for _, q := range w.Quantiles {
					add("quantile="+strconv.FormatFloat(q.Q, 'f', -1, 64), *q.Value)
				}
			},
		},
		{
			name:   "quantile upper bound",
			prom:   url.Values{"query": {`sum(sketchd_quantile_upper{aggregate="latency",quantile="0.9"})`}, "start": {unix(60 * time.Minute)}, "end": {unix(60 * time.Minute)}, "step": {"30m"}},
			v1Path: "/v1/streams/pageviews/aggregates/latency",
			v1:     url.Values{"from": {rfc(30 * time.Minute)}, "to": {rfc(60 * time.Minute)}, "step": {"30m"}, "q": {"0.9"}},
			fixed:  map[string]string{"stream": "pageviews", "aggregate": "latency"},
			value: func(w *v1Window, add func(string, float64)) {
				add("quantile=0.9", *w.Quantiles[0].Upper)
			},
		},
		{
			name:   "an item's count",
			prom:   url.Values{"query": {`sum by (country) (sketchd_top_count{stream="pageviews",aggregate="urls",item="/p/1"})`}, "start": {unix(20 * time.Minute)}, "end": {unix(80 * time.Minute)}, "step": {"20m"}},
			v1Path: "/v1/streams/pageviews/aggregates/urls",
			v1:     url.Values{"from": {rfc(0)}, "to": {rfc(80 * time.Minute)}, "step": {"20m"}, "group_by": {"country"}, "item": {"/p/1"}, "top": {"0"}},
			fixed:  map[string]string{"stream": "pageviews", "aggregate": "urls"},
			value: func(w *v1Window, add func(string, float64)) {
				add("item=/p/1", float64(w.Items[0].Estimate))
			},
		},
		{
			name:   "top items without an item matcher",
			prom:   url.Values{"query": {`sum(sketchd_top_count_upper{aggregate="urls"})`}, "start": {unix(60 * time.Minute)}, "end": {unix(120 * time.Minute)}, "step": {"1h"}},
			v1Path: "/v1/streams/pageviews/aggregates/urls",
			v1:     url.Values{"from": {rfc(0)}, "to": {rfc(120 * time.Minute)}, "step": {"1h"}},
			fixed:  map[string]string{"stream": "pageviews", "aggregate": "urls"},
			value: func(w *v1Window, add func(string, float64)) {
				for _, it := range w.Top {
					add("item="+it.Item, float64(it.Upper))
				}
			},
		},
		{
			name:   "exact counts by country",
			prom:   url.Values{"query": {`sum by (country) (sketchd_count{stream="pageviews"})`}, "start": {unix(5 * time.Minute)}, "end": {unix(30 * time.Minute)}, "step": {"5m"}},
			v1Path: "/v1/streams/pageviews/aggregates/latency",
			v1:     url.Values{"from": {rfc(0)}, "to": {rfc(30 * time.Minute)}, "step": {"5m"}, "group_by": {"country"}},
			fixed:  map[string]string{"stream": "pageviews"},
			value:  func(w *v1Window, add func(string, float64)) { add("", float64(w.Events)) },
		},
		{
			name:   "instant query: the lookback window before time",
			prom:   url.Values{"query": {`sum by (device) (sketchd_distinct{aggregate="users"})`}, "time": {unix(70 * time.Minute)}},
			v1Path: "/v1/streams/pageviews/aggregates/users",
			v1:     url.Values{"from": {rfc(65 * time.Minute)}, "to": {rfc(70 * time.Minute)}, "group_by": {"device"}},
			fixed:  pv, value: distinct, instant: true,
		},
		{
			name:    "instant query with lookback_delta",
			prom:    url.Values{"query": {`sum(sketchd_count{stream=~"page.*"})`}, "time": {rfc(60 * time.Minute)}, "lookback_delta": {"1h"}},
			v1Path:  "/v1/streams/pageviews/aggregates/users",
			v1:      url.Values{"from": {rfc(0)}, "to": {rfc(60 * time.Minute)}},
			fixed:   map[string]string{"stream": "pageviews"},
			value:   func(w *v1Window, add func(string, float64)) { add("", float64(w.Events)) },
			instant: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/v1/query_range"
			var at int64
			if tt.instant {
				path = "/api/v1/query"
				tm, err := time.Parse(time.RFC3339, rfc(0))
				if err != nil {
					t.Fatal(err)
				}
				if s := tt.prom.Get("time"); s != "" {
					if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
						tm = time.Unix(sec, 0)
					} else if tm, err = time.Parse(time.RFC3339, s); err != nil {
						t.Fatal(err)
					}
				}
				at = tm.UnixMilli()
			}
			want := f.v1Samples(t, tt.v1Path, tt.v1, tt.fixed, at, tt.value)
			if len(want) == 0 {
				t.Fatal("the /v1 answer has no samples: the case checks nothing")
			}
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				got, _ := f.promSamples(t, method, path, tt.prom)
				sortSamples(got)
				sortSamples(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s %s %s:\n got %v\nwant %v", method, path, tt.prom.Get("query"), got, want)
				}
			}
		})
	}
}

func TestPromAPIRefuses(t *testing.T) {
	f := newStoreFixture(t)
	rng := url.Values{"start": {strconv.FormatInt(t0.Unix(), 10)}, "end": {strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)}, "step": {"60"}}
	withQuery := func(q string) url.Values {
		v := maps.Clone(rng)
		v.Set("query", q)
		return v
	}
	tests := []struct {
		name, path string
		form       url.Values
		status     int
		errorType  string
		contains   string
	}{
		{"a function", "/api/v1/query_range", withQuery(`rate(sketchd_count{stream="pageviews"}[5m])`), 400, "bad_data", "rate()"},
		{"a range selector", "/api/v1/query", url.Values{"query": {`sketchd_count[5m]`}}, 400, "bad_data", "range selectors"},
		{"another aggregation", "/api/v1/query_range", withQuery(`max by (country) (sketchd_distinct)`), 400, "bad_data", "only sum"},
		{"adding series", "/api/v1/query_range", withQuery(`sketchd_distinct + sketchd_count`), 400, "bad_data", "binary operators"},
		{"sum over several metrics", "/api/v1/query_range", withQuery(`sum({__name__=~"sketchd_distinct.*"})`), 400, "bad_data", "select one metric name"},
		{"a negative matcher on a dimension", "/api/v1/query_range", withQuery(`sketchd_distinct{country!="de"}`), 400, "bad_data", `country!="de"`},
		{"a free regular expression", "/api/v1/query_range", withQuery(`sketchd_distinct{country=~"d.+"}`), 400, "bad_data", "alternation of literal values"},
		{"a quantile out of range", "/api/v1/query_range", withQuery(`sketchd_quantile{quantile="2"}`), 400, "bad_data", "[0, 1]"},
		{"offset", "/api/v1/query_range", withQuery(`sketchd_count offset 5m`), 400, "bad_data", "offset"},
		{"a syntax error", "/api/v1/query_range", withQuery(`sum(sketchd_count`), 400, "bad_data", "parse error"},
		{"no step", "/api/v1/query_range", url.Values{"query": {"sketchd_count"}, "start": rng["start"], "end": rng["end"]}, 400, "bad_data", "step"},
		{"end before start", "/api/v1/query_range", url.Values{"query": {"sketchd_count"}, "start": rng["end"], "end": rng["start"], "step": {"60"}}, 400, "bad_data", "before start"},
		{"too many points", "/api/v1/query_range", url.Values{"query": {"sketchd_count"}, "start": rng["start"], "end": rng["end"], "step": {"0.1"}}, 400, "bad_data", "maximum resolution"},
		{"a step past the maximum range", "/api/v1/query_range", url.Values{"query": {"sketchd_count"}, "start": rng["start"], "end": rng["end"], "step": {"2y"}}, 400, "bad_data", "maximum range"},
		{"a lookback past the maximum range", "/api/v1/query", url.Values{"query": {"sketchd_count"}, "lookback_delta": {"40000000"}}, 400, "bad_data", "maximum range"},
		{"a range past the maximum range", "/api/v1/query_range", url.Values{"query": {"sketchd_count"}, "start": {"1000000000"}, "end": {"1795600800"}, "step": {"30d"}}, 422, "execution", "wider than"},
		{"a bad time", "/api/v1/query", url.Values{"query": {"sketchd_count"}, "time": {"yesterday"}}, 400, "bad_data", "timestamp"},
		{"series without match[]", "/api/v1/series", url.Values{}, 400, "bad_data", "match[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, pr := f.promCall(t, http.MethodGet, tt.path, tt.form)
			if status != tt.status || pr.Status != "error" || pr.ErrorType != tt.errorType || !strings.Contains(pr.Error, tt.contains) {
				t.Errorf("%s %v: %d %+v; want %d, errorType %s, error containing %q", tt.path, tt.form, status, pr, tt.status, tt.errorType, tt.contains)
			}
		})
	}
}

func TestPromAPIScalarAndBuildInfo(t *testing.T) {
	f := newFixture(t)
	// Grafana's "Save & test" runs the instant query 1+1 at time 4.
	status, pr := f.promCall(t, http.MethodPost, "/api/v1/query", url.Values{"query": {"1+1"}, "time": {"4"}})
	if status != 200 || string(pr.Data) != `{"resultType":"scalar","result":[4,"2"]}` {
		t.Errorf("1+1: %d %+v %s", status, pr, pr.Data)
	}
	// Endpoints not served are the router's 404, in Prometheus's envelope.
	if r := f.get(t, "/api/v1/targets"); r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"errorType":"not_found"`) {
		t.Errorf("/api/v1/targets: %d %s, want 404 not_found", r.status, r.body)
	}
	status, pr = f.promCall(t, http.MethodGet, "/api/v1/status/buildinfo", nil)
	var bi struct {
		Version  string            `json:"version"`
		Features map[string]string `json:"features"`
	}
	if err := json.Unmarshal(pr.Data, &bi); err != nil || status != 200 || bi.Version == "" || len(bi.Features) != 0 {
		t.Errorf("buildinfo: %d %+v %v (Grafana takes an answer without features for Prometheus)", status, bi, err)
	}
}

func TestPromAPIStepRaisedToGranularity(t *testing.T) {
	f := newStoreFixture(t)
	q := url.Values{"query": {`sum(sketchd_count{stream="pageviews"})`},
		"start": {strconv.FormatInt(t0.Add(10*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(t0.Add(20*time.Minute).Unix(), 10)}, "step": {"90s"}}
	got, warnings := f.promSamples(t, http.MethodGet, "/api/v1/query_range", q)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "raised to 2m0s") {
		t.Errorf("warnings %q, want one saying the step was raised to 2m", warnings)
	}
	want := f.v1Samples(t, "/v1/streams/pageviews/aggregates/users",
		url.Values{"from": {t0.Add(8 * time.Minute).Format(time.RFC3339)}, "to": {t0.Add(20 * time.Minute).Format(time.RFC3339)}, "step": {"2m"}},
		map[string]string{"stream": "pageviews"}, 0, func(w *v1Window, add func(string, float64)) { add("", float64(w.Events)) })
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestPromAPIMetadataEndpoints(t *testing.T) {
	f := newStoreFixture(t)
	rng := url.Values{"start": {t0.Format(time.RFC3339)}, "end": {t0.Add(fixtureSpan).Format(time.RFC3339)}}
	get := func(path string, form url.Values, out any) []string {
		t.Helper()
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			status, pr := f.promCall(t, method, path, form)
			if status != 200 || pr.Status != "success" {
				t.Fatalf("%s %s %v: %d %+v", method, path, form, status, pr)
			}
			if err := json.Unmarshal(pr.Data, out); err != nil {
				t.Fatal(err)
			}
		}
		_, pr := f.promCall(t, http.MethodGet, path, form)
		return pr.Warnings
	}
	var names []string
	get("/api/v1/labels", rng, &names)
	if want := []string{"__name__", "aggregate", "country", "device", "item", "quantile", "stream"}; !slices.Equal(names, want) {
		t.Errorf("labels %q, want %q", names, want)
	}
	var vals []string
	get("/api/v1/label/country/values", rng, &vals)
	if want := []string{"de", "fr", "us"}; !slices.Equal(vals, want) {
		t.Errorf("country values %q, want %q", vals, want)
	}
	// Clients send the extreme times they can to mean "all data"
	// (promtool does): clamped, not refused.
	get("/api/v1/label/country/values", url.Values{"start": {"-9223372036854775808"}, "end": {"9223372036854775807"}}, &vals)
	if want := []string{"de", "fr", "us"}; !slices.Equal(vals, want) {
		t.Errorf("country values over all time %q, want %q", vals, want)
	}
	withMatch := maps.Clone(rng)
	withMatch["match[]"] = []string{`sketchd_distinct{country="fr"}`}
	get("/api/v1/label/device/values", withMatch, &vals)
	if want := []string{"desktop", "mobile"}; !slices.Equal(vals, want) {
		t.Errorf("device values for France %q, want %q", vals, want)
	}
	get("/api/v1/label/__name__/values", rng, &vals)
	if len(vals) != 10 || !slices.Contains(vals, "sketchd_quantile_upper") || !slices.Contains(vals, "sketchd_count") {
		t.Errorf("metric names %q, want the 10 of the kinds the stream has", vals)
	}
	get("/api/v1/label/aggregate/values", rng, &vals)
	if want := []string{"latency", "urls", "users"}; !slices.Equal(vals, want) {
		t.Errorf("aggregate values %q, want %q (sample is a reservoir: no metric)", vals, want)
	}
	// Items: the top items over the range, those of /v1 for the same range.
	get("/api/v1/label/item/values", rng, &vals)
	wantItems := v1TopItems(t, f, rng.Get("start"), rng.Get("end"))
	if len(wantItems) == 0 || !slices.Equal(vals, wantItems) {
		t.Errorf("item values %q, want the top items %q", vals, wantItems)
	}

	var series []map[string]string
	withMatch["match[]"] = []string{`sketchd_quantile{aggregate="latency",country="fr"}`}
	get("/api/v1/series", withMatch, &series)
	if len(series) != 2*3 { // devices × default quantiles
		t.Errorf("series %v, want the 2 French keys × 3 default quantiles", series)
	}
	for _, s := range series {
		if s["__name__"] != "sketchd_quantile" || s["country"] != "fr" || s["stream"] != "pageviews" || s["quantile"] == "" {
			t.Errorf("series %v", s)
		}
	}
	withLimit := maps.Clone(withMatch)
	withLimit.Set("limit", "4")
	if w := get("/api/v1/series", withLimit, &series); len(series) != 4 || len(w) != 1 {
		t.Errorf("series with limit 4: %d series, warnings %q; want 4 and a truncation warning", len(series), w)
	}
	var md map[string][]struct{ Type, Help string }
	get("/api/v1/metadata", nil, &md)
	if len(md) != 10 || md["sketchd_distinct"][0].Type != "gauge" || md["sketchd_distinct"][0].Help == "" {
		t.Errorf("metadata %v", md)
	}
}

func TestPromAPIReadToken(t *testing.T) {
	const token = "grafana-read-token"
	f := newFixture(t, func(c *Config) { c.ReadToken = token })
	path := "/api/v1/query?query=1%2B1"
	// Refusals in front of the handler come in Prometheus's envelope, with
	// sketchd's problem code beside the error type, and keep their headers.
	refused := func(what string, r response, status int, typ, code string) {
		t.Helper()
		var env struct{ Status, ErrorType, Error, Code string }
		if err := json.Unmarshal(r.body, &env); err != nil || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %v, Content-Type %q, body %s", what, err, r.header.Get("Content-Type"), r.body)
		}
		if r.status != status || env.Status != "error" || env.ErrorType != typ || env.Code != code || env.Error == "" {
			t.Errorf("%s: %d %+v, want %d, errorType %s, code %s", what, r.status, env, status, typ, code)
		}
	}
	r := f.get(t, path)
	refused("without a token", r, http.StatusUnauthorized, "unauthorized", codeUnauthorized)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("a 401 without WWW-Authenticate")
	}
	refused("with a wrong token", f.get(t, path, "Authorization", "Bearer wrong"), http.StatusUnauthorized, "unauthorized", codeUnauthorized)
	refused("an endpoint sketchd does not serve", f.get(t, "/api/v1/rules", "Authorization", "Bearer "+token), http.StatusNotFound, "not_found", codeNotFound)
	refused("PUT", f.do(t, http.MethodPut, path, nil, "Authorization", "Bearer "+token), http.StatusMethodNotAllowed, "method_not_allowed", codeMethodNotAllowed)
	if status, pr := f.promCall(t, http.MethodGet, "/api/v1/query", url.Values{"query": {"1+1"}}, "Authorization", "Bearer "+token); status != 200 || pr.Status != "success" {
		t.Errorf("with the read token: %d %+v", status, pr)
	}
}

// The item label's values over "all data" (the extreme times promtool
// sends, clamped to a year): where a year of panes is past max_panes (a
// long retention without tiers), the top items of the last MetaRange (24
// hours) instead of a 422, as grafana.md says extreme times are clamped,
// not refused.
func TestPromAPIItemValuesAllTime(t *testing.T) {
	f := newStoreFixture(t)
	keys := int64(len(paneKeys(f.fixture.store)))
	f.opts = []fixtureOpt{func(c *Config) { c.Querier = newQuerier(t, f.db, query.Options{MaxPanes: keys * 2 * 1440}) }} // two days of 1-minute panes
	f.serve(t, f.fixture)
	all := url.Values{"start": {"-9223372036854775808"}, "end": {"9223372036854775807"}}
	status, pr := f.promCall(t, http.MethodGet, "/api/v1/label/item/values", all)
	if status != 200 || pr.Status != "success" {
		t.Fatalf("item values over all time: %d %+v", status, pr)
	}
	var vals []string
	if err := json.Unmarshal(pr.Data, &vals); err != nil {
		t.Fatal(err)
	}
	want := v1TopItems(t, f, t0.Format(time.RFC3339), t0.Add(fixtureSpan).Format(time.RFC3339))
	if len(want) == 0 || !slices.Equal(vals, want) {
		t.Errorf("item values over all time %q, want the top items of the fixture's span %q", vals, want)
	}
}

// v1TopItems returns the urls aggregate's top items over [from, to) as
// /v1 answers them, sorted.
func v1TopItems(t *testing.T, f *storeFixture, from, to string) []string {
	t.Helper()
	var top v1Answer
	f.getJSON(t, "/v1/streams/pageviews/aggregates/urls?from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), &top)
	var items []string
	for _, it := range top.Groups[0].Windows[0].Top {
		items = append(items, it.Item)
	}
	slices.Sort(items)
	return items
}
