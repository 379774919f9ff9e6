package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/sketchd/sketchd/sketch"
)

// resT and winT decode answers in tests: every kind's members flat.
type resT struct {
	resultJSON
	Groups []struct {
		Key     map[string]string `json:"key"`
		Windows []winT            `json:"windows"`
	} `json:"groups"`
}

type winT struct {
	Start  string `json:"start"`
	End    string `json:"end"`
	Final  bool   `json:"final"`
	Events uint64 `json:"events"`
	Panes  int    `json:"panes"`
	// hll
	Distinct *distinctJSON `json:"distinct"`
	// cms
	Total      uint64     `json:"total"`
	Epsilon    float64    `json:"epsilon"`
	Confidence float64    `json:"confidence"`
	ErrorBound uint64     `json:"error_bound"`
	Top        []freqJSON `json:"top"`
	Items      []freqJSON `json:"items"`
	// tdigest
	Count       uint64         `json:"count"`
	Min         *float64       `json:"min"`
	Max         *float64       `json:"max"`
	Compression float64        `json:"compression"`
	Quantiles   []quantileJSON `json:"quantiles"`
	CDF         []cdfJSON      `json:"cdf"`
	// reservoir
	Population uint64            `json:"population"`
	Size       int               `json:"size"`
	Sample     []json.RawMessage `json:"sample"`
}

const aggPath = "/v1/streams/pageviews/aggregates/"

// Whole fixture range, and a sub-range.
var (
	fullFrom, fullTo = t0, t0.Add(fixtureSpan)
	subFrom, subTo   = t0.Add(20 * time.Minute), t0.Add(50 * time.Minute)
)

func TestQueryHLL(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		query    string
		from, to time.Time
		keep     func(*tev) bool
	}{
		{"all", rangeQuery(fullFrom, fullTo), fullFrom, fullTo, nil},
		{"sub-range", rangeQuery(subFrom, subTo), subFrom, subTo, nil},
		{"where one", join(rangeQuery(fullFrom, fullTo), "where=country=de"), fullFrom, fullTo,
			func(e *tev) bool { return e.country == "de" }},
		{"where OR same dim", join(rangeQuery(fullFrom, fullTo), "where=country=de", "where=country=fr"), fullFrom, fullTo,
			func(e *tev) bool { return e.country == "de" || e.country == "fr" }},
		{"where AND dims", join(rangeQuery(subFrom, subTo), "where=country=us", "where=device=mobile"), subFrom, subTo,
			func(e *tev) bool { return e.country == "us" && e.device == "mobile" }},
		{"unix seconds", fmt.Sprintf("from=%d&to=%d.0", subFrom.Unix(), subTo.Unix()), subFrom, subTo, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res resT
			f.getJSON(t, aggPath+"users?"+tt.query, &res)
			want := f.truth(tt.from, tt.to, tt.keep)
			if res.Kind != "hll" || res.Aggregate != "users" || res.Stream != "pageviews" {
				t.Errorf("kind/aggregate/stream = %s/%s/%s", res.Kind, res.Aggregate, res.Stream)
			}
			if res.From != tt.from.Format(time.RFC3339) || res.To != tt.to.Format(time.RFC3339) {
				t.Errorf("range = %s..%s, want %s..%s", res.From, res.To, tt.from.Format(time.RFC3339), tt.to.Format(time.RFC3339))
			}
			if res.Step != nil || res.Window != nil {
				t.Errorf("step/window = %v/%v, want null", res.Step, res.Window)
			}
			if len(res.Groups) != 1 || len(res.Groups[0].Windows) != 1 || len(res.Groups[0].Key) != 0 {
				t.Fatalf("groups = %+v, want one group with one window", res.Groups)
			}
			w := res.Groups[0].Windows[0]
			if w.Events != uint64(len(want)) {
				t.Errorf("events = %d, want %d", w.Events, len(want))
			}
			if w.Distinct == nil {
				t.Fatalf("no distinct answer: %+v", w)
			}
			d := w.Distinct
			truth := float64(distinctUsers(want))
			if d.Lower > truth || d.Upper < truth {
				t.Errorf("distinct [%g, %g] (estimate %g) does not cover the truth %g", d.Lower, d.Upper, d.Estimate, truth)
			}
			if d.Confidence != 0.95 || d.RSE <= 0 {
				t.Errorf("confidence %g, rse %g", d.Confidence, d.RSE)
			}
		})
	}
}

func TestQueryGroupBy(t *testing.T) {
	f := newFixture(t)
	var res resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(fullFrom, fullTo), "group_by=country"), &res)
	if len(res.Groups) != len(countries) {
		t.Fatalf("%d groups, want %d", len(res.Groups), len(countries))
	}
	for i, g := range res.Groups {
		c := g.Key["country"]
		if c != countries[i] || len(g.Key) != 1 {
			t.Errorf("group %d key %v, want country=%s (sorted)", i, g.Key, countries[i])
		}
		want := f.truth(fullFrom, fullTo, func(e *tev) bool { return e.country == c })
		w := g.Windows[0]
		if w.Events != uint64(len(want)) {
			t.Errorf("%s: events %d, want %d", c, w.Events, len(want))
		}
		if truth := float64(distinctUsers(want)); w.Distinct.Lower > truth || w.Distinct.Upper < truth {
			t.Errorf("%s: [%g, %g] misses %g", c, w.Distinct.Lower, w.Distinct.Upper, truth)
		}
	}
	// Repeated and comma forms are the same.
	var a, b resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(subFrom, subTo), "group_by=country,device"), &a)
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(subFrom, subTo), "group_by=country", "group_by=device"), &b)
	if len(a.Groups) != 6 || len(b.Groups) != 6 {
		t.Fatalf("groups %d and %d, want 6", len(a.Groups), len(b.Groups))
	}
	for i := range a.Groups {
		if a.Groups[i].Windows[0].Events != b.Groups[i].Windows[0].Events {
			t.Errorf("group %d differs between comma and repeated group_by", i)
		}
	}
}

func TestQueryStepAndWindow(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name         string
		params       string
		step, window time.Duration
		wantN        int
	}{
		{"tumbling", "step=10m", 10 * time.Minute, 10 * time.Minute, 6},
		{"sliding", "step=10m&window=30m", 10 * time.Minute, 30 * time.Minute, 6},
		{"days syntax", "step=1d", 24 * time.Hour, 24 * time.Hour, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := t0.Add(30*time.Minute), t0.Add(90*time.Minute)
			var res resT
			f.getJSON(t, aggPath+"users?"+join(rangeQuery(from, to), tt.params), &res)
			if res.Step == nil || *res.Step != durString(tt.step) || res.Window == nil || *res.Window != durString(tt.window) {
				t.Errorf("step/window = %v/%v, want %s/%s", res.Step, res.Window, tt.step, tt.window)
			}
			ws := res.Groups[0].Windows
			if len(ws) != tt.wantN {
				t.Fatalf("%d windows, want %d", len(ws), tt.wantN)
			}
			for _, w := range ws {
				start, _ := time.Parse(time.RFC3339, w.Start)
				end, _ := time.Parse(time.RFC3339, w.End)
				if end.Sub(start) != tt.window {
					t.Errorf("window %s..%s is not %s wide", w.Start, w.End, tt.window)
				}
				want := f.truth(start, end, nil)
				if w.Events != uint64(len(want)) {
					t.Errorf("window %s..%s: events %d, want %d", w.Start, w.End, w.Events, len(want))
				}
				if truth := float64(distinctUsers(want)); w.Distinct.Lower > truth || w.Distinct.Upper < truth {
					t.Errorf("window %s: [%g, %g] misses %g", w.Start, w.Distinct.Lower, w.Distinct.Upper, truth)
				}
			}
		})
	}
}

func durString(d time.Duration) string {
	s := d.String()
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return s
}

func TestQueryFinalAndFreshness(t *testing.T) {
	f := newFixture(t)
	var res resT
	// Default range: the last hour before now (the fixture's end).
	f.getJSON(t, aggPath+"users?step=1m", &res)
	if res.From != fullTo.Add(-time.Hour).Format(time.RFC3339) || res.To != fullTo.Format(time.RFC3339) {
		t.Errorf("default range %s..%s, want the hour before now", res.From, res.To)
	}
	ws := res.Groups[0].Windows
	if len(ws) != 60 {
		t.Fatalf("%d windows, want 60", len(ws))
	}
	if !ws[0].Final || ws[len(ws)-1].Final {
		t.Errorf("final: first %v, last %v; want the first final and the last open", ws[0].Final, ws[len(ws)-1].Final)
	}
	if res.Watermark == nil || *res.Watermark != rfc3339(f.status.CommittedWatermark) {
		t.Errorf("watermark %v, want %s", res.Watermark, rfc3339(f.status.CommittedWatermark))
	}
	if res.AsOf.LastCommit == nil || res.AsOf.Note == "" {
		t.Errorf("as_of = %+v", res.AsOf)
	}
	if res.Keys != 6 || res.Panes == 0 {
		t.Errorf("keys %d panes %d", res.Keys, res.Panes)
	}
}

func TestQueryCMS(t *testing.T) {
	f := newFixture(t)
	want := f.truth(subFrom, subTo, nil)
	counts := map[string]uint64{}
	for _, e := range want {
		counts[e.url]++
	}
	var res resT
	f.getJSON(t, aggPath+"urls?"+join(rangeQuery(subFrom, subTo), "top=5", "item=/p/0", "item=/p/3", "item=/nope"), &res)
	w := res.Groups[0].Windows[0]
	if w.Top == nil {
		t.Fatalf("no cms answer: %+v", w)
	}
	if w.Total != uint64(len(want)) {
		t.Errorf("total %d, want %d", w.Total, len(want))
	}
	if want := uint64(math.Ceil(w.Epsilon * float64(w.Total))); w.ErrorBound != want {
		t.Errorf("error_bound %d, want ceil(εN) = %d", w.ErrorBound, want)
	}
	if w.Confidence <= 0.9 || w.Confidence >= 1 {
		t.Errorf("confidence %g", w.Confidence)
	}
	check := func(kind string, fr freqJSON) {
		truth := counts[fr.Item]
		if fr.Estimate < truth || fr.Estimate > truth+w.ErrorBound {
			t.Errorf("%s %q: estimate %d, truth %d, bound %d", kind, fr.Item, fr.Estimate, truth, w.ErrorBound)
		}
		if fr.Lower > truth || fr.Upper < truth {
			t.Errorf("%s %q: [%d, %d] misses %d", kind, fr.Item, fr.Lower, fr.Upper, truth)
		}
	}
	if len(w.Top) != 5 {
		t.Fatalf("%d top items, want 5", len(w.Top))
	}
	// The true top 5 by count.
	type kv struct {
		k string
		v uint64
	}
	var all []kv
	for k, v := range counts {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	for i, fr := range w.Top {
		check("top", fr)
		if i > 0 && fr.Estimate > w.Top[i-1].Estimate {
			t.Errorf("top not descending at %d", i)
		}
	}
	if w.Top[0].Item != all[0].k {
		t.Errorf("top item %q, want %q", w.Top[0].Item, all[0].k)
	}
	if len(w.Items) != 3 || w.Items[0].Item != "/p/0" || w.Items[2].Item != "/nope" {
		t.Fatalf("items = %+v", w.Items)
	}
	for _, fr := range w.Items {
		check("item", fr)
	}
	// Default top is the aggregate's top_k.
	var def resT
	f.getJSON(t, aggPath+"urls?"+rangeQuery(subFrom, subTo), &def)
	if n := len(def.Groups[0].Windows[0].Top); n != 5 {
		t.Errorf("default top: %d items, want top_k 5", n)
	}
	if def.Params.TopK != 5 || def.Params.Field != "url" {
		t.Errorf("params %+v", def.Params)
	}
}

func TestQueryTDigest(t *testing.T) {
	f := newFixture(t)
	want := f.truth(fullFrom, fullTo, func(e *tev) bool { return e.device == "mobile" })
	vals := make([]float64, len(want))
	for i, e := range want {
		vals[i] = e.lat
	}
	slices.Sort(vals)
	rank := func(x float64) float64 { // fraction of values <= x
		i := sort.SearchFloat64s(vals, math.Nextafter(x, math.Inf(1)))
		return float64(i) / float64(len(vals))
	}
	var res resT
	f.getJSON(t, aggPath+"latency?"+join(rangeQuery(fullFrom, fullTo), "where=device=mobile", "q=0.1,0.5", "q=0.99", "cdf=50,200"), &res)
	w := res.Groups[0].Windows[0]
	if w.Quantiles == nil {
		t.Fatalf("no tdigest answer: %+v", w)
	}
	if w.Count != uint64(len(vals)) || *w.Min != vals[0] || *w.Max != vals[len(vals)-1] {
		t.Errorf("count/min/max = %d/%v/%v, want %d/%g/%g", w.Count, *w.Min, *w.Max, len(vals), vals[0], vals[len(vals)-1])
	}
	if w.Compression != 100 {
		t.Errorf("compression %g", w.Compression)
	}
	if len(w.Quantiles) != 3 {
		t.Fatalf("%d quantiles, want 3", len(w.Quantiles))
	}
	// A t-digest with compression 100 keeps rank error well under 1% here;
	// allow the stated rank error plus 0.005 for interpolation.
	for _, q := range w.Quantiles {
		got := rank(*q.Value)
		if tol := *q.RankError + 0.005; math.Abs(got-q.Q) > tol {
			t.Errorf("q=%g: value %g has true rank %g (rank error %g)", q.Q, *q.Value, got, *q.RankError)
		}
		if *q.Lower > *q.Value || *q.Upper < *q.Value {
			t.Errorf("q=%g: [%g, %g] does not hold %g", q.Q, *q.Lower, *q.Upper, *q.Value)
		}
	}
	for _, c := range w.CDF {
		if got := rank(c.Value); math.Abs(*c.P-got) > 0.01 {
			t.Errorf("cdf(%g) = %g, truth %g", c.Value, *c.P, got)
		}
	}
	// Default quantiles; an empty window answers nulls, never NaN.
	var def resT
	f.getJSON(t, aggPath+"latency?"+rangeQuery(fullTo.Add(time.Hour), fullTo.Add(2*time.Hour)), &def)
	dw := def.Groups[0].Windows[0]
	if len(dw.Quantiles) != 3 || dw.Quantiles[2].Q != 0.99 || dw.Quantiles[0].Value != nil || dw.Min != nil || dw.Count != 0 {
		t.Errorf("empty window: %+v", dw)
	}
}

func TestQueryReservoir(t *testing.T) {
	f := newFixture(t)
	want := f.truth(subFrom, subTo, func(e *tev) bool { return e.country == "fr" })
	inputs := map[string]bool{}
	for _, e := range want {
		inputs[e.raw] = true
	}
	var res resT
	f.getJSON(t, aggPath+"sample?"+join(rangeQuery(subFrom, subTo), "where=country=fr"), &res)
	w := res.Groups[0].Windows[0]
	if w.Sample == nil {
		t.Fatalf("no reservoir answer: %+v", w)
	}
	if w.Population != uint64(len(want)) || w.Size != 16 || len(w.Sample) != 16 {
		t.Errorf("population %d size %d sample %d, want %d, 16, 16", w.Population, w.Size, len(w.Sample), len(want))
	}
	seen := map[string]bool{}
	for _, it := range w.Sample {
		if !inputs[string(it)] {
			t.Errorf("sample item %s is not an input of the range", it)
		}
		if seen[string(it)] {
			t.Errorf("sample item %s twice", it)
		}
		seen[string(it)] = true
		var v map[string]any
		if err := json.Unmarshal(it, &v); err != nil {
			t.Errorf("sample item is not raw JSON: %v", err)
		}
	}
	var five resT
	f.getJSON(t, aggPath+"sample?"+join(rangeQuery(subFrom, subTo), "where=country=fr", "n=5"), &five)
	if n := len(five.Groups[0].Windows[0].Sample); n != 5 {
		t.Errorf("n=5: %d items", n)
	}
}

func TestSketchEndpoint(t *testing.T) {
	f := newFixture(t)
	q := join(rangeQuery(subFrom, subTo), "where=country=us")
	for _, agg := range []string{"users", "urls", "latency", "sample"} {
		t.Run(agg, func(t *testing.T) {
			r := f.get(t, aggPath+agg+"/sketch?"+q)
			if r.status != 200 || r.header.Get("Content-Type") != "application/octet-stream" {
				t.Fatalf("status %d, type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			sk, err := sketch.Decode(r.body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			var res resT
			f.getJSON(t, aggPath+agg+"?"+q, &res)
			w := res.Groups[0].Windows[0]
			if got := r.header.Get(hdrKind); got != res.Kind || sk.Kind().String() != res.Kind {
				t.Errorf("kind header %q, decoded %s, JSON %s", got, sk.Kind(), res.Kind)
			}
			if r.header.Get(hdrFrom) != w.Start || r.header.Get(hdrTo) != w.End ||
				r.header.Get(hdrEvents) != fmt.Sprint(w.Events) || r.header.Get(hdrFinal) != fmt.Sprint(w.Final) {
				t.Errorf("headers %v, window %+v", r.header, w)
			}
			// The decoded sketch answers what the JSON says.
			switch s := sk.(type) {
			case *sketch.HLL:
				if e := s.Estimate(); e.Estimate != w.Distinct.Estimate {
					t.Errorf("estimate %g, JSON %g", e.Estimate, w.Distinct.Estimate)
				}
			case *sketch.CountMin:
				if s.Total() != w.Total || string(s.TopK(1)[0].Item) != w.Top[0].Item {
					t.Errorf("total %d top %q, JSON %d %q", s.Total(), s.TopK(1)[0].Item, w.Total, w.Top[0].Item)
				}
			case *sketch.TDigest:
				if v := s.Quantile(0.5).Value; v != *w.Quantiles[0].Value {
					t.Errorf("median %g, JSON %g", v, *w.Quantiles[0].Value)
				}
			case *sketch.Reservoir:
				if s.Population() != w.Population || len(s.Sample()) != len(w.Sample) {
					t.Errorf("population %d, JSON %d", s.Population(), w.Population)
				}
			}
		})
	}
}

func TestKeys(t *testing.T) {
	f := newFixture(t)
	var res keysJSON
	f.getJSON(t, "/v1/streams/pageviews/keys?"+rangeQuery(fullFrom, fullTo), &res)
	if len(res.Keys) != 6 || res.Truncated || !slices.Equal(res.Dimensions, []string{"country", "device"}) {
		t.Fatalf("keys = %+v", res)
	}
	f.getJSON(t, "/v1/streams/pageviews/keys?"+join(rangeQuery(fullFrom, fullTo), "where=country=de", "where=country=us"), &res)
	if len(res.Keys) != 4 {
		t.Errorf("where: %d keys, want 4: %v", len(res.Keys), res.Keys)
	}
	for _, k := range res.Keys {
		if k["country"] != "de" && k["country"] != "us" {
			t.Errorf("key %v does not match where", k)
		}
	}
	f.getJSON(t, "/v1/streams/pageviews/keys?"+join(rangeQuery(fullFrom, fullTo), "limit=2"), &res)
	if len(res.Keys) != 2 || !res.Truncated {
		t.Errorf("limit=2: %d keys, truncated %v", len(res.Keys), res.Truncated)
	}
	f.getJSON(t, "/v1/streams/pageviews/keys?"+rangeQuery(fullTo.Add(time.Hour), fullTo.Add(2*time.Hour)), &res)
	if res.Keys == nil || len(res.Keys) != 0 {
		t.Errorf("empty range: keys %v, want []", res.Keys)
	}
}

func TestParseTimeValue(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2026-11-25T10:00:00Z", t0.UnixNano(), true},
		{"2026-11-25T11:00:00+01:00", t0.UnixNano(), true},
		{"2026-11-25T10:00:00.25Z", t0.UnixNano() + 250e6, true},
		{"1795600800", t0.UnixNano(), true},
		{"1795600800.5", t0.UnixNano() + 5e8, true},
		{"1795600800.000000001", t0.UnixNano() + 1, true},
		{"-1.5", -1_500_000_000, true},
		{"1795600800000", t0.UnixNano(), true},
		{"1795600800250.5", t0.UnixNano() + 250_500_000, true},
		{"99999999999", 0, false}, // seconds past 2250
		{"100000000000", 100_000_000_000 * int64(time.Millisecond), true},
		{"-100000000000", -100_000_000_000 * int64(time.Millisecond), true},
		{"", 0, false},
		{"1e9", 0, false},
		{"12.3.4", 0, false},
		{"2026-11-25", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeValue(tt.in, t0, false)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Errorf("parseTimeValue(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestQueryEscapedWhere(t *testing.T) {
	f := newFixture(t)
	// where values travel URL-escaped; '=' after the first belongs to the value.
	var res resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(subFrom, subTo), "where="+url.QueryEscape("country=d=e")), &res)
	if res.Keys != 0 || res.Groups[0].Windows[0].Events != 0 {
		t.Errorf("a value that matches nothing merged %d keys", res.Keys)
	}
}
