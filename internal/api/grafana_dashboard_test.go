package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaDashboard is the part of a Grafana dashboard JSON this test reads.
type grafanaDashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDSRef   `json:"datasource"`
			AllValue   string          `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int           `json:"id"`
		Title      string        `json:"title"`
		Type       string        `json:"type"`
		Datasource *grafanaDSRef `json:"datasource"`
		Targets    []struct {
			Expr       string        `json:"expr"`
			RefID      string        `json:"refId"`
			Instant    bool          `json:"instant"`
			Datasource *grafanaDSRef `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

type grafanaDSRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestGrafanaDashboard checks docs/grafana/sketchd-dashboard.json: an
// importable dashboard whose data source is a variable of type
// prometheus, every query of which parses with the upstream PromQL parser
// and is answered, with data, by the router over the fixture (whose stream
// has the demo stream's aggregates and dimensions), for the country
// variable's "All" and for a multi-value selection as Grafana formats it.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana/sketchd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("title %q uid %q schemaVersion %d panels %d: not a dashboard", d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	f := newStoreFixture(t)
	vars := map[string]string{"stream": "pageviews"}
	dsVar := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q) != nil || q != "prometheus" {
				t.Errorf("variable %s: a datasource variable must query type prometheus, got %s", v.Name, v.Query)
			}
			dsVar = v.Name == "datasource"
		case "query":
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			checkDS(t, "variable "+v.Name, v.Datasource)
			values := f.labelValuesQuery(t, substitute(q.Query, vars))
			if len(values) == 0 {
				t.Errorf("variable %s: %s has no values", v.Name, q.Query)
			}
			if v.Name == "stream" && !has(values, "pageviews") {
				t.Errorf("variable stream: %q, want pageviews among them", values)
			}
			if v.AllValue != "" && v.AllValue != ".*" {
				t.Errorf("variable %s: allValue %q; sketchd takes .* (no filter)", v.Name, v.AllValue)
			}
		default:
			t.Errorf("variable %s: unexpected type %s", v.Name, v.Type)
		}
	}
	if !dsVar {
		t.Error("no datasource variable named datasource: the dashboard would be bound to one data source")
	}
	p := parser.NewParser(parser.Options{})
	queries := 0
	for _, panel := range d.Panels {
		checkDS(t, "panel "+panel.Title, panel.Datasource)
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, tg := range panel.Targets {
			checkDS(t, "panel "+panel.Title+" "+tg.RefID, tg.Datasource)
			for _, country := range []string{".*", "(de|fr)"} {
				vars["country"] = country
				expr := substitute(tg.Expr, vars)
				if _, err := p.ParseExpr(expr); err != nil {
					t.Errorf("panel %q %s: %s does not parse: %v", panel.Title, tg.RefID, expr, err)
					continue
				}
				queries++
				n := f.dashboardQuery(t, expr, tg.Instant)
				if n == 0 {
					t.Errorf("panel %q %s: %s answered no series", panel.Title, tg.RefID, expr)
				}
			}
		}
	}
	t.Logf("%d panels, %d queries answered", len(d.Panels), queries)
}

func checkDS(tb testing.TB, where string, ds *grafanaDSRef) {
	tb.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
		tb.Errorf("%s: datasource %+v, want the ${datasource} variable of type prometheus", where, ds)
	}
}

var dashVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// substitute replaces $name and ${name} as Grafana does.
func substitute(s string, vars map[string]string) string {
	return dashVar.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

// dashboardQuery runs a panel's query as Grafana does (a range query over
// the fixture's last 90 minutes at a 1-minute step, or an instant query at
// its end) and returns the number of series.
func (f *fixture) dashboardQuery(tb testing.TB, expr string, instant bool) int {
	tb.Helper()
	end := t0.Add(fixtureSpan)
	form := url.Values{"query": {expr}}
	path := "/api/v1/query_range"
	if instant {
		path = "/api/v1/query"
		form.Set("time", strconv.FormatInt(end.Unix(), 10))
	} else {
		form.Set("start", strconv.FormatInt(end.Add(-90*time.Minute).Unix(), 10))
		form.Set("end", strconv.FormatInt(end.Unix(), 10))
		form.Set("step", "60")
	}
	status, pr := f.promCall(tb, http.MethodPost, path, form)
	if status != http.StatusOK || pr.Status != "success" {
		tb.Errorf("%s %s: %d %+v", path, expr, status, pr)
		return 0
	}
	var res promResult
	var ss []promSeries
	if json.Unmarshal(pr.Data, &res) != nil || json.Unmarshal(res.Result, &ss) != nil {
		tb.Errorf("%s %s: %s", path, expr, pr.Data)
	}
	return len(ss)
}

var labelValuesFn = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// labelValuesQuery runs a variable's label_values(selector, label) as
// Grafana does: the label's values for the series the selector matches.
func (f *fixture) labelValuesQuery(tb testing.TB, q string) []string {
	tb.Helper()
	m := labelValuesFn.FindStringSubmatch(q)
	if m == nil {
		tb.Fatalf("variable query %q: want label_values(selector, label)", q)
	}
	form := url.Values{"match[]": {m[1]}, "start": {strconv.FormatInt(t0.Unix(), 10)}, "end": {strconv.FormatInt(t0.Add(fixtureSpan).Unix(), 10)}}
	status, pr := f.promCall(tb, http.MethodGet, "/api/v1/label/"+m[2]+"/values", form)
	var vals []string
	if status != http.StatusOK || json.Unmarshal(pr.Data, &vals) != nil {
		tb.Fatalf("label values %q: %d %+v", q, status, pr)
	}
	return vals
}
