package api

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// newClockedStoreFixture is newStoreFixture over a store whose clock (the
// one its retention reads by) is now.
func newClockedStoreFixture(tb testing.TB, now *atomic.Int64) *storeFixture {
	tb.Helper()
	base := newFixture(tb)
	f := &storeFixture{dir: tb.TempDir()}
	o := storeOptions()
	o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	db, err := store.Open(f.dir, nil, nil, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	f.db = db
	ctx := context.Background()
	if f.info, err = db.CreateStream(ctx, base.status.Spec); err != nil {
		tb.Fatal(err)
	}
	if err := db.Commit(ctx, f.info.ID, sketchd.Flush{Panes: allPanes(base.store), Checkpoint: sharedCP}); err != nil {
		tb.Fatal(err)
	}
	f.serve(tb, base)
	return f
}

// retainedJSON is the part of an answer that says what retention left of
// its range.
type retainedJSON struct {
	From         string  `json:"from"`
	RetainedFrom *string `json:"retained_from"`
	Resolution   []struct {
		From, To, Granularity, Source string
	} `json:"resolution"`
	Groups []struct {
		Windows []struct {
			Start    string `json:"start"`
			Final    bool   `json:"final"`
			Complete *bool  `json:"complete"`
			Events   uint64 `json:"events"`
		} `json:"windows"`
	} `json:"groups"`
}

func at(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }

func rangeOf(from, to time.Duration, more string) string {
	return "from=" + url.QueryEscape(at(from)) + "&to=" + url.QueryEscape(at(to)) + more
}

// retainedNow is a store clock that keeps the fixture's panes (1-minute,
// over [t0, t0+2h), kept 168h) from t0+1h on.
func retainedNow() *atomic.Int64 {
	now := &atomic.Int64{}
	now.Store(t0.Add(169*time.Hour + 30*time.Second).UnixNano())
	return now
}

// TestAnswersBeforeRetained: a stream without rollup tiers whose
// retention has dropped the first hour of its data. An answer over a range
// that starts before the first pane still kept says so: retained_from
// names that pane, the resolution has an "expired" part for what is
// gone, and each window in it, wholly or partly, has complete: false; the
// windows after it answer as before. The multi-aggregate answer says the
// same of each aggregate. An answer over a range that is all retained is
// byte for byte the answer of a store whose retention keeps everything.
// Before: retained_from, the expired part and complete were absent, and
// the windows before the horizon answered 0 events, final.
func TestAnswersBeforeRetained(t *testing.T) {
	ref := newStoreFixture(t) // its store's clock, t0, keeps every pane
	f := newClockedStoreFixture(t, retainedNow())
	const users = "/v1/streams/pageviews/aggregates/users?"
	for _, path := range []string{
		users + rangeOf(time.Hour, 2*time.Hour, "&step=15m"),
		users + rangeOf(time.Hour, 2*time.Hour, ""),
		// A sliding window reads before from: from its first window's start on.
		users + rangeOf(70*time.Minute, 2*time.Hour, "&step=5m&window=15m&group_by=country"),
		"/v1/streams/pageviews/query?aggregate=users,latency&" + rangeOf(time.Hour, 2*time.Hour, "&step=30m"),
	} {
		got, want := f.get(t, path), ref.get(t, path)
		if got.status != http.StatusOK || !bytes.Equal(got.body, want.body) {
			t.Errorf("retained range %s:\n%s\nwant the answer of a store keeping everything:\n%s", path, got.body, want.body)
		}
		for _, s := range []string{"retained_from", "complete", "expired"} {
			if bytes.Contains(got.body, []byte(s)) {
				t.Errorf("retained range %s: the answer holds %q", path, s)
			}
		}
	}

	check := func(what string, a, want retainedJSON, series bool) {
		t.Helper()
		if a.RetainedFrom == nil || *a.RetainedFrom != at(time.Hour) {
			t.Errorf("%s: retained_from %v, want %s", what, a.RetainedFrom, at(time.Hour))
		}
		type part struct{ From, To, Granularity, Source string }
		var res []part
		for _, r := range a.Resolution {
			res = append(res, part(r))
		}
		if wantRes := []part{{at(30 * time.Minute), at(time.Hour), "1m", "expired"}, {at(time.Hour), at(90 * time.Minute), "1m", "panes"}}; !slices.Equal(res, wantRes) {
			t.Errorf("%s: resolution %+v, want %+v", what, res, wantRes)
		}
		ws, wantWs := a.Groups[0].Windows, want.Groups[0].Windows
		if len(ws) != len(wantWs) {
			t.Fatalf("%s: %d windows, want %d", what, len(ws), len(wantWs))
		}
		for i, w := range ws {
			gone := series && w.Start < at(time.Hour) || !series
			if (w.Complete != nil) != gone || (w.Complete != nil && *w.Complete) || !w.Final {
				t.Errorf("%s: window %s: complete %v final %t, want complete false only when it starts before %s", what, w.Start, w.Complete, w.Final, at(time.Hour))
			}
			if wantEvents := wantWs[i].Events; series && gone {
				if w.Events != 0 {
					t.Errorf("%s: window %s in the expired part answers %d events", what, w.Start, w.Events)
				}
			} else if w.Events != wantEvents {
				t.Errorf("%s: window %s: %d events, want %d (the retained part's)", what, w.Start, w.Events, wantEvents)
			}
		}
	}
	var series, refSeries, whole, refWhole retainedJSON
	f.getJSON(t, users+rangeOf(30*time.Minute, 90*time.Minute, "&step=15m"), &series)
	ref.getJSON(t, users+rangeOf(30*time.Minute, 90*time.Minute, "&step=15m"), &refSeries)
	check("step=15m", series, refSeries, true)
	f.getJSON(t, users+rangeOf(30*time.Minute, 90*time.Minute, ""), &whole)
	ref.getJSON(t, users+rangeOf(time.Hour, 90*time.Minute, ""), &refWhole) // what is left of it
	check("one window", whole, refWhole, false)

	var multi struct{ Results []retainedJSON }
	f.getJSON(t, "/v1/streams/pageviews/query?aggregate=users,latency&"+rangeOf(30*time.Minute, 90*time.Minute, "&step=15m"), &multi)
	if len(multi.Results) != 2 {
		t.Fatalf("multi: %d results", len(multi.Results))
	}
	for i, r := range multi.Results {
		check("multi result "+strconv.Itoa(i), r, refSeries, true)
	}
}

// TestAnswerCacheFollowsRetention: the retained horizon moves with the
// clock, between commits. A question answered while its range was all
// retained is answered again once the horizon has passed its start, at
// the same commit: its cached answer (rendered, or of the Prometheus API)
// is not served. Before: the answer cache served the first answer,
// complete, until the next commit.
func TestAnswerCacheFollowsRetention(t *testing.T) {
	now := retainedNow()
	f := newClockedStoreFixture(t, now)
	path := "/v1/streams/pageviews/aggregates/users?" + rangeOf(70*time.Minute, 80*time.Minute, "")
	multi := "/v1/streams/pageviews/query?aggregate=users&" + rangeOf(70*time.Minute, 80*time.Minute, "")
	prom := url.Values{"query": {`sum(sketchd_count{stream="pageviews"})`}, "start": {at(80 * time.Minute)}, "end": {at(80 * time.Minute)}, "step": {"600"}}
	var before retainedJSON
	f.getJSON(t, path, &before)
	f.get(t, multi)
	_, pb := f.promCall(t, http.MethodGet, "/api/v1/query_range", prom)
	if before.RetainedFrom != nil || before.Groups[0].Windows[0].Complete != nil || len(pb.Warnings) != 0 {
		t.Fatalf("before the horizon moves: %+v, warnings %q: want an answer all retained", before, pb.Warnings)
	}
	now.Add(int64(15 * time.Minute)) // panes kept from t0+75m on
	var after retainedJSON
	f.getJSON(t, path, &after)
	if after.RetainedFrom == nil || *after.RetainedFrom != at(75*time.Minute) || after.Groups[0].Windows[0].Complete == nil {
		t.Errorf("after the horizon moved past the range's start: retained_from %v, window %+v: want %s and complete false",
			after.RetainedFrom, after.Groups[0].Windows[0], at(75*time.Minute))
	}
	var m struct{ Results []retainedJSON }
	f.getJSON(t, multi, &m)
	if r := m.Results[0]; r.RetainedFrom == nil || r.Groups[0].Windows[0].Complete == nil {
		t.Errorf("multi, after the horizon moved: %+v", r)
	}
	if _, pa := f.promCall(t, http.MethodGet, "/api/v1/query_range", prom); len(pa.Warnings) != 1 || !strings.Contains(pa.Warnings[0], "past its retention") {
		t.Errorf("Prometheus API, after the horizon moved: warnings %q, want the retention warning", pa.Warnings)
	}
}

// TestPromAPIBeforeRetained: the Prometheus API over a range the stream's
// retention has partly dropped (panes kept from t0+1h on). A window wholly
// before it has no sample, as a Prometheus series has none where it has no
// data (not a 0); a window across it has the sample of its retained part,
// /v1's number; the answer carries a warning saying so, which Grafana
// shows on the panel. A range all retained has no warning. Before: the
// windows before the horizon answered 0, without a warning.
func TestPromAPIBeforeRetained(t *testing.T) {
	f := newClockedStoreFixture(t, retainedNow())
	q := `sum by (country) (sketchd_count{stream="pageviews"})`
	got, warnings := f.promSamples(t, http.MethodGet, "/api/v1/query_range", url.Values{
		"query": {q}, "start": {at(45 * time.Minute)}, "end": {at(90 * time.Minute)}, "step": {"900"}})
	want := f.v1Samples(t, "/v1/streams/pageviews/aggregates/users",
		url.Values{"from": {at(time.Hour)}, "to": {at(90 * time.Minute)}, "step": {"15m"}, "group_by": {"country"}},
		map[string]string{"stream": "pageviews"}, 0,
		func(w *v1Window, add func(string, float64)) { add("", float64(w.Events)) })
	sortSamples(got)
	sortSamples(want)
	if !slices.Equal(got, want) {
		t.Errorf("range query:\n got %v\nwant %v (the windows from t0+1h on only)", got, want)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "past its retention") || !strings.Contains(warnings[0], at(time.Hour)) {
		t.Errorf("range query warnings %q, want one naming the retention and %s", warnings, at(time.Hour))
	}

	// An instant query whose window [t0+55m, t0+65m) straddles the horizon.
	got, warnings = f.promSamples(t, http.MethodGet, "/api/v1/query", url.Values{
		"query": {`sum(sketchd_count{stream="pageviews"})`}, "time": {at(65 * time.Minute)}, "lookback_delta": {"10m"}})
	var v1 retainedJSON
	f.getJSON(t, "/v1/streams/pageviews/aggregates/users?"+rangeOf(55*time.Minute, 65*time.Minute, ""), &v1)
	if w := v1.Groups[0].Windows[0]; len(got) != 1 || got[0].v != float64(w.Events) || w.Events == 0 || w.Complete == nil {
		t.Errorf("instant query across the horizon: %v, want one sample of /v1's %d events (its window incomplete: %v)", got, w.Events, w.Complete)
	}
	if len(warnings) != 1 {
		t.Errorf("instant query across the horizon: warnings %q, want the retention warning", warnings)
	}
	// Wholly before it: no sample, the warning.
	got, warnings = f.promSamples(t, http.MethodGet, "/api/v1/query", url.Values{
		"query": {`sum(sketchd_count{stream="pageviews"})`}, "time": {at(50 * time.Minute)}, "lookback_delta": {"10m"}})
	if len(got) != 0 || len(warnings) != 1 {
		t.Errorf("instant query before the horizon: %v, warnings %q; want no sample and the warning", got, warnings)
	}
	// All retained: no warning.
	if _, warnings = f.promSamples(t, http.MethodGet, "/api/v1/query_range", url.Values{
		"query": {q}, "start": {at(75 * time.Minute)}, "end": {at(90 * time.Minute)}, "step": {"900"}}); len(warnings) != 0 {
		t.Errorf("a retained range: warnings %q", warnings)
	}
}

// TestPromAPIEmptySelection: as in Prometheus, an aggregation over a
// selection with no series is an empty result (sum over an empty vector
// is empty), for instant and range queries, with and without by, as a
// bare selector and an impossible matcher pair already were; so is a
// stream's sum over a range without data. Label names and values with
// none to list are [] (Prometheus's answer, which promtool decodes), never
// null. Before: sum without by answered a 0 sample labelled {stream}, and
// the lists were null (promtool query labels failed on it).
func TestPromAPIEmptySelection(t *testing.T) {
	f := newStoreFixture(t)
	rng := url.Values{"start": {at(30 * time.Minute)}, "end": {at(90 * time.Minute)}, "step": {"900"}}
	instant := url.Values{"time": {at(90 * time.Minute)}}
	for _, q := range []string{
		`sum(sketchd_count{stream="pageviews",country="xx"})`,
		`sum(sketchd_distinct{stream="pageviews",aggregate="users",country="xx"})`,
		`sum(sketchd_quantile{stream="pageviews",country="xx"})`,
		`sum(sketchd_top_count{stream="pageviews",country="xx",item="/p/1"})`,
		`sum without (country, device) (sketchd_count{stream="pageviews",country="xx"})`,
		`sum by (country) (sketchd_count{stream="pageviews",country="xx"})`,
		`sketchd_count{stream="pageviews",country="xx"}`,
		`sum(sketchd_count{stream="pageviews",country="de",country="fr"})`,
		`sum(sketchd_count{stream="pageviews",country=""})`,
	} {
		for path, form := range map[string]url.Values{"/api/v1/query_range": rng, "/api/v1/query": instant} {
			form = maps.Clone(form)
			form.Set("query", q)
			status, pr := f.promCall(t, http.MethodGet, path, form)
			var res promResult
			if status != http.StatusOK || json.Unmarshal(pr.Data, &res) != nil || string(res.Result) != "[]" {
				t.Errorf("%s %s: %d %s, want an empty result", path, q, status, pr.Data)
			}
		}
	}
	// A stream's sum over a day without data.
	status, pr := f.promCall(t, http.MethodGet, "/api/v1/query_range", url.Values{"query": {`sum(sketchd_count{stream="pageviews"})`},
		"start": {at(-24 * time.Hour)}, "end": {at(-23 * time.Hour)}, "step": {"900"}})
	if body := string(pr.Data); status != http.StatusOK || !strings.Contains(body, `"result":[]`) {
		t.Errorf("sum over a range without data: %d %s, want an empty result", status, body)
	}
	// The same selections with data are still answered.
	if got, _ := f.promSamples(t, http.MethodGet, "/api/v1/query", url.Values{"query": {`sum(sketchd_count{stream="pageviews",country="de"})`}, "time": {at(90 * time.Minute)}}); len(got) != 1 || got[0].v == 0 {
		t.Errorf("sum over a selection with data: %v", got)
	}

	empty := url.Values{"start": {at(-48 * time.Hour)}, "end": {at(-24 * time.Hour)}}
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/api/v1/label/country/values", empty},
		{"/api/v1/label/item/values", empty},
		{"/api/v1/label/nosuch/values", nil},
		{"/api/v1/labels", url.Values{"match[]": {`sketchd_count{stream="nosuch"}`}}},
		{"/api/v1/series", url.Values{"match[]": {`sketchd_count{stream="nosuch"}`}}},
	} {
		r := f.get(t, c.path+"?"+c.form.Encode())
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"data":[]`)) {
			t.Errorf("%s %v: %d %s, want \"data\":[]", c.path, c.form, r.status, r.body)
		}
	}
}

// TestSketchAndSetopBeforeRetained: the merged-sketch export and the
// set-operation operands say it too when their range starts before what
// the stream's retention keeps (here from t0+15m on): the sketch in
// headers (Sketchd-Retained-From, Sketchd-Complete: false), an operand in
// retained_from and complete: false; over a retained range neither.
// Before: nothing said the sketch or operand missed the first 15 minutes.
func TestSketchAndSetopBeforeRetained(t *testing.T) {
	f := newKindsFixture(t)
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	o := storeOptions()
	o.Now = func() time.Time { return t0.Add(168*time.Hour + 15*time.Minute) }
	db, err := store.Open(f.dir, nil, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f.db = db
	f.serve(t)
	for _, c := range []struct {
		from         time.Duration
		retainedFrom string
		complete     string
	}{{0, at(15 * time.Minute), "false"}, {15 * time.Minute, "", ""}} {
		r := f.get(t, "/v1/streams/shop/aggregates/users/sketch?"+rangeOf(c.from, 30*time.Minute, ""))
		if r.status != http.StatusOK || r.header.Get(hdrRetainedFrom) != c.retainedFrom || r.header.Get(hdrComplete) != c.complete {
			t.Errorf("sketch from t0+%s: %d, %s %q, %s %q; want %q, %q", c.from, r.status,
				hdrRetainedFrom, r.header.Get(hdrRetainedFrom), hdrComplete, r.header.Get(hdrComplete), c.retainedFrom, c.complete)
		}
	}
	var out struct{ A, B retainedOperand }
	f.getJSON(t, "/v1/streams/shop/aggregates/users/setop?a.where=url=/cart&b.where=url=/checkout&"+
		"a.from="+url.QueryEscape(at(0))+"&b.from="+url.QueryEscape(at(15*time.Minute))+"&to="+url.QueryEscape(at(30*time.Minute)), &out)
	if out.A.RetainedFrom == nil || *out.A.RetainedFrom != at(15*time.Minute) || out.A.Complete == nil || *out.A.Complete {
		t.Errorf("operand a from t0: retained_from %v, complete %v; want %s, false", out.A.RetainedFrom, out.A.Complete, at(15*time.Minute))
	}
	if out.B.RetainedFrom != nil || out.B.Complete != nil || out.B.Events == 0 {
		t.Errorf("operand b from t0+15m: %+v, want a retained operand with events", out.B)
	}
}

type retainedOperand struct {
	RetainedFrom *string `json:"retained_from"`
	Complete     *bool   `json:"complete"`
	Events       uint64  `json:"events"`
}
