package ingest

// The Prometheus API (internal/promapi, docs/grafana.md) over a stream that
// an alter gave a new aggregate: a selector that reads it answers, the new
// aggregate's series with no samples before its since (as a new Prometheus
// series), every other series as before.

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
)

// promSamples is an answer's samples: series (its labels) -> unix ms ->
// value.
type promSamples map[string]map[int64]float64

func seriesID(ls map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(ls)) {
		fmt.Fprintf(&b, "%s=%q,", k, ls[k])
	}
	return b.String()
}

func (s promSamples) add(ls map[string]string, t int64, v float64) {
	id := seriesID(ls)
	if s[id] == nil {
		s[id] = map[int64]float64{}
	}
	s[id][t] = v
}

// prom GETs a Prometheus API query and returns its status, body and
// samples (of a 200 answer).
func (f *lifeFixture) prom(tb testing.TB, path string, form url.Values) (int, string, promSamples) {
	tb.Helper()
	a := f.do(tb, http.MethodGet, "/api/v1/"+path+"?"+form.Encode(), "")
	if a.status != http.StatusOK {
		return a.status, string(a.body), nil
	}
	var env struct {
		Data struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
				Value  *[2]any           `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &env); err != nil {
		tb.Fatalf("%s: %v: %s", path, err, a.body)
	}
	out := promSamples{}
	for _, s := range env.Data.Result {
		pts := s.Values
		if s.Value != nil {
			pts = [][2]any{*s.Value}
		}
		for _, p := range pts {
			sec, _ := p[0].(float64)
			str, _ := p[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				tb.Fatalf("%s: value %v: %v", path, p[1], err)
			}
			out.add(s.Metric, int64(sec*1000), v)
		}
	}
	return a.status, string(a.body), out
}

// v1Distinct adds the distinct estimates (or, count, the event counts) of
// aggregate agg over [from, to) at step (0: one window) from /v1 to out,
// as the samples of series with labels fixed (whose stream label names
// the stream asked) plus the group key; a sample at the window's end, or
// at at when set.
func (f *lifeFixture) v1Distinct(tb testing.TB, out promSamples, agg string, count bool, q url.Values, fixed map[string]string, at time.Time) {
	tb.Helper()
	var res struct {
		Groups []struct {
			Key     map[string]string `json:"key"`
			Windows []struct {
				End      time.Time `json:"end"`
				Events   uint64    `json:"events"`
				Distinct *struct {
					Estimate float64 `json:"estimate"`
				} `json:"distinct"`
			} `json:"windows"`
		} `json:"groups"`
	}
	getJSON(tb, f.http, f.url+"/v1/streams/"+fixed["stream"]+"/aggregates/"+agg+"?"+q.Encode(), &res)
	for _, g := range res.Groups {
		ls := maps.Clone(fixed)
		maps.Copy(ls, g.Key)
		for _, w := range g.Windows {
			t := w.End
			if !at.IsZero() {
				t = at
			}
			switch {
			case count:
				out.add(ls, t.UnixMilli(), float64(w.Events))
			case w.Distinct != nil:
				out.add(ls, t.UnixMilli(), w.Distinct.Estimate)
			default:
				tb.Fatalf("/v1 %s %v: a window without distinct", agg, q)
			}
		}
	}
}

// hasSamples reports a sample of aggregate agg in s.
func hasSamples(s promSamples, agg string) bool {
	for id, pts := range s {
		if strings.Contains(id, fmt.Sprintf("aggregate=%q,", agg)) && len(pts) > 0 {
			return true
		}
	}
	return false
}

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

func TestAlterPromAPI(t *testing.T) {
	f := newLifeFixture(t, Options{})
	if a := f.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU+","+aggC)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	// bb: another stream, which the alter of aa must leave alone.
	bb := strings.Replace(strings.Replace(aggSpec(aggU), `"aa"`, `"bb"`, 1), "ev.aa", "ev.bb", 1)
	if a := f.do(t, http.MethodPost, "/v1/streams", bb); a.status != http.StatusCreated {
		t.Fatalf("create bb: %d %s", a.status, a.body)
	}
	publishEvents(t, f.js, "ev.aa", timedEvents(41, 120, base)) // panes base, base+1m
	publishEvents(t, f.js, "ev.bb", timedEvents(43, 180, base))
	f.waitEvents(t, "u", base, base.Add(10*time.Minute), 120)
	waitFor(t, 15*time.Second, "bb holds 180 events", func() (bool, string) {
		got := promSamples{}
		q := url.Values{"from": {rfc(base)}, "to": {rfc(base.Add(10 * time.Minute))}}
		f.v1Distinct(t, got, "u", true, q, map[string]string{"stream": "bb"}, time.Time{})
		return maps.Equal(got[seriesID(map[string]string{"stream": "bb"})], map[int64]float64{base.Add(10 * time.Minute).UnixMilli(): 180}), fmt.Sprint(got)
	})
	// n and a start at the pane after the highest event time applied
	// (base+1m59s): base+2m. a sorts first: sketchd_count must still read
	// an aggregate with every window.
	if a := f.do(t, http.MethodPatch, "/v1/streams/aa", `{"aggregates":{`+aggN+`,"a":{"sketch":"cms","field":"url"}}}`); a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	since := base.Add(2 * time.Minute)
	if s := f.spec(t).Spec.Aggregates["n"].Since; s == nil || !s.Equal(since) {
		t.Fatalf("n: since %v, want %s", s, since)
	}
	publishEvents(t, f.js, "ev.aa", timedEvents(42, 120, base.Add(5*time.Minute))) // panes base+5m, +6m
	f.waitEvents(t, "u", base, base.Add(10*time.Minute), 240)
	f.waitEvents(t, "n", since, base.Add(10*time.Minute), 120)

	// Range queries from base+1m (the window [base, base+1m)) to base+8m,
	// a minute apart: u's windows all, n's from [since, since+1m) on.
	start, end := base.Add(time.Minute), base.Add(8*time.Minute)
	rangeForm := func(query string) url.Values {
		return url.Values{"query": {query}, "start": {rfc(start)}, "end": {rfc(end)}, "step": {"60"}}
	}
	// /v1 refuses n before since: its windows from since on, on the same
	// minutes.
	v1Range := func(agg string, groupBy ...string) url.Values {
		from := base
		if agg == "n" {
			from = since
		}
		q := url.Values{"from": {rfc(from)}, "to": {rfc(end)}, "step": {"1m"}}
		if len(groupBy) > 0 {
			q["group_by"] = groupBy
		}
		return q
	}
	for _, c := range []struct {
		name, query string
		want        func(out promSamples)
		aggs        []string // the aggregates with samples
	}{
		{"bare", `sketchd_distinct{stream="aa"}`, func(out promSamples) {
			for _, agg := range []string{"u", "n"} {
				f.v1Distinct(t, out, agg, false, v1Range(agg, "country"), map[string]string{"__name__": "sketchd_distinct", "stream": "aa", "aggregate": agg}, time.Time{})
			}
		}, []string{"u", "n"}},
		{"sum by country", `sum by (country) (sketchd_distinct{stream="aa"})`, func(out promSamples) {
			for _, agg := range []string{"u", "n"} {
				f.v1Distinct(t, out, agg, false, v1Range(agg, "country"), map[string]string{"stream": "aa", "aggregate": agg}, time.Time{})
			}
		}, []string{"u", "n"}},
		{"sum of every stream", `sum(sketchd_distinct)`, func(out promSamples) {
			for _, agg := range []string{"u", "n"} {
				f.v1Distinct(t, out, agg, false, v1Range(agg), map[string]string{"stream": "aa", "aggregate": agg}, time.Time{})
			}
			f.v1Distinct(t, out, "u", false, v1Range("u"), map[string]string{"stream": "bb", "aggregate": "u"}, time.Time{})
		}, []string{"u", "n"}},
		{"the new aggregate named", `sum(sketchd_distinct{aggregate="n"})`, func(out promSamples) {
			f.v1Distinct(t, out, "n", false, v1Range("n"), map[string]string{"stream": "aa", "aggregate": "n"}, time.Time{})
		}, []string{"n"}},
		{"count", `sketchd_count{stream="aa"}`, func(out promSamples) {
			f.v1Distinct(t, out, "u", true, v1Range("u", "country"), map[string]string{"__name__": "sketchd_count", "stream": "aa"}, time.Time{})
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, got := f.prom(t, "query_range", rangeForm(c.query))
			if status != http.StatusOK {
				t.Fatalf("%s: %d %s", c.query, status, body)
			}
			want := promSamples{}
			c.want(want)
			if len(want) == 0 {
				t.Fatalf("%s: /v1 has no samples", c.query)
			}
			if !maps.EqualFunc(got, want, maps.Equal) {
				t.Errorf("%s:\n got %v\nwant %v", c.query, got, want)
			}
			for _, id := range slices.Sorted(maps.Keys(got)) {
				if !strings.Contains(id, `aggregate="n"`) {
					continue
				}
				for ts := range got[id] {
					if ts < since.Add(time.Minute).UnixMilli() {
						t.Errorf("%s: n sample at %s, before the end of its first window from since", id, time.UnixMilli(ts).UTC())
					}
				}
			}
			for _, agg := range c.aggs {
				if !hasSamples(got, agg) {
					t.Errorf("%s: no sample of %s", c.query, agg)
				}
			}
		})
	}

	// A step of 5m from base+1m30s: windows [base-4m, base+1m) (ending
	// before start: no sample), [base+1m, base+6m) (before since for n),
	// [base+6m, base+11m).
	t.Run("steps of 5m", func(t *testing.T) {
		s5 := base.Add(90 * time.Second)
		form := url.Values{"query": {`sum(sketchd_distinct{stream="aa"})`}, "start": {rfc(s5)}, "end": {rfc(end)}, "step": {"300"}}
		status, body, got := f.prom(t, "query_range", form)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		want := promSamples{}
		for agg, from := range map[string]time.Time{"u": s5.Add(-5 * time.Minute), "n": base.Add(6 * time.Minute)} {
			q := url.Values{"from": {rfc(from)}, "to": {rfc(end)}, "step": {"5m"}}
			f.v1Distinct(t, want, agg, false, q, map[string]string{"stream": "aa", "aggregate": agg}, time.Time{})
		}
		for _, pts := range want {
			maps.DeleteFunc(pts, func(ts int64, _ float64) bool { return ts < s5.UnixMilli() })
		}
		if len(want) != 2 {
			t.Fatalf("/v1: %v", want)
		}
		if !maps.EqualFunc(got, want, maps.Equal) {
			t.Errorf("\n got %v\nwant %v", got, want)
		}
	})

	// Instant queries: the window [time - 5m, time); n has a sample only
	// when that window starts at or after since.
	for _, c := range []struct {
		name   string
		at     time.Time
		withN  bool
		fromAt time.Time // the window's start
	}{
		{"before since", base.Add(90 * time.Second), false, base.Add(-4 * time.Minute)},
		{"window across since", base.Add(6 * time.Minute), false, base.Add(time.Minute)},
		{"window from since", base.Add(7 * time.Minute), true, since},
	} {
		t.Run("instant "+c.name, func(t *testing.T) {
			status, body, got := f.prom(t, "query", url.Values{"query": {`sum by (country) (sketchd_distinct{stream="aa"})`}, "time": {rfc(c.at)}})
			if status != http.StatusOK {
				t.Fatalf("%s: %d %s", c.at, status, body)
			}
			want := promSamples{}
			q := url.Values{"from": {rfc(c.fromAt)}, "to": {rfc(c.at)}, "group_by": {"country"}}
			f.v1Distinct(t, want, "u", false, q, map[string]string{"stream": "aa", "aggregate": "u"}, c.at)
			if c.withN {
				f.v1Distinct(t, want, "n", false, q, map[string]string{"stream": "aa", "aggregate": "n"}, c.at)
			}
			if !hasSamples(got, "u") || hasSamples(got, "n") != c.withN {
				t.Errorf("at %s: samples of u %v, of n %v; want true, %v", c.at, hasSamples(got, "u"), hasSamples(got, "n"), c.withN)
			}
			if !maps.EqualFunc(got, want, maps.Equal) {
				t.Errorf("at %s:\n got %v\nwant %v", c.at, got, want)
			}
		})
	}

	// The item label's values over a range from before since: c's top items
	// over it and a's from since on.
	t.Run("item values", func(t *testing.T) {
		values := func(match string, from time.Time) []string {
			t.Helper()
			q := url.Values{"match[]": {match}, "start": {rfc(from)}, "end": {rfc(end)}}
			a := f.do(t, http.MethodGet, "/api/v1/label/item/values?"+q.Encode(), "")
			var env struct {
				Data []string `json:"data"`
			}
			if a.status != http.StatusOK {
				t.Fatalf("item values of %s from %s: %d %s", match, from, a.status, a.body)
			}
			if err := json.Unmarshal(a.body, &env); err != nil {
				t.Fatal(err)
			}
			return env.Data
		}
		got := values(`sketchd_top_count{stream="aa"}`, base)
		c, a := values(`sketchd_top_count{stream="aa",aggregate="c"}`, base), values(`sketchd_top_count{stream="aa",aggregate="a"}`, since)
		if len(a) == 0 {
			t.Fatal("a has no top items from since")
		}
		want := slices.Compact(slices.Sorted(slices.Values(append(c, a...))))
		if !slices.Equal(got, want) {
			t.Errorf("item values from %s: %q, want c's from then and a's from since %q", base, got, want)
		}
	})
}
