package promapi

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sketchd/sketchd"
)

func newTestHandler() *Handler { return New(Config{}) }

// TestCompile: what the mapping accepts, and what it refuses with
// bad_data, by the upstream parser's AST.
func TestCompile(t *testing.T) {
	h := newTestHandler()
	tests := []struct {
		q       string
		metrics []string // accepted: the metric names selected
		sum     bool
		by      []string
		without bool
		scalar  float64
		refused string // refused: part of the error
	}{
		{q: `sketchd_distinct{stream="pv"}`, metrics: []string{"sketchd_distinct"}},
		{q: `(sketchd_count)`, metrics: []string{"sketchd_count"}},
		{q: `sum by (country) (sketchd_quantile{quantile="0.99"})`, metrics: []string{"sketchd_quantile"}, sum: true, by: []string{"country"}},
		{q: `sum without (device) ((sketchd_top_count))`, metrics: []string{"sketchd_top_count"}, sum: true, by: []string{"device"}, without: true},
		{q: `sum(sketchd_distinct_upper)`, metrics: []string{"sketchd_distinct_upper"}, sum: true},
		{q: `{__name__=~"sketchd_distinct.*"}`, metrics: []string{"sketchd_distinct", "sketchd_distinct_lower", "sketchd_distinct_upper"}},
		{q: `{__name__="up"}`, metrics: nil},
		{q: `1+1`, scalar: 2},
		{q: `-(2*3)^2 % 5`, scalar: -1},
		{q: `sum({__name__=~"sketchd_count|sketchd_distinct"})`, refused: "select one metric name"},
		{q: `avg(sketchd_distinct)`, refused: "only sum"},
		{q: `topk(3, sketchd_distinct)`, refused: "only sum"},
		{q: `sum(rate(sketchd_count[5m]))`, refused: "sum takes one sketchd selector"},
		{q: `histogram_quantile(0.9, sketchd_count)`, refused: "histogram_quantile()"},
		{q: `sketchd_count[5m]`, refused: "range selectors"},
		{q: `sketchd_count[1h:5m]`, refused: "subqueries"},
		{q: `sketchd_count offset 1h`, refused: "offset"},
		{q: `sketchd_count @ 1700000000`, refused: "@"},
		{q: `sketchd_count / 2`, refused: "binary operators"},
		{q: `1 > bool 2`, refused: "operator"},
		{q: `"text"`, refused: "expression"},
		{q: `sum(`, refused: "parse error"},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			p, err := h.compile(tt.q)
			if tt.refused != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.typ != errorBadData || !strings.Contains(ae.msg, tt.refused) {
					t.Fatalf("compile(%q) = %+v, %v; want bad_data containing %q", tt.q, p, err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.scalar != nil {
				if *p.scalar != tt.scalar {
					t.Errorf("scalar %v, want %v", *p.scalar, tt.scalar)
				}
				return
			}
			var names []string
			for _, m := range p.sel.metrics {
				names = append(names, m.name)
			}
			if !slices.Equal(names, tt.metrics) || p.sel.sum != tt.sum || !slices.Equal(p.sel.by, tt.by) || p.sel.without != tt.without {
				t.Errorf("got %v sum %v by %v without %v", names, p.sel.sum, p.sel.by, p.sel.without)
			}
		})
	}
}

// TestTargets: matchers become where filters, label checks and the
// quantile or item lists; a matcher that cannot be a key filter is refused.
func TestTargets(t *testing.T) {
	spec := sketchd.DefaultStream()
	spec.Name = "pv"
	spec.GroupBy = []string{"country", "device"}
	spec.Aggregates = map[string]sketchd.Aggregate{
		"users": {Sketch: sketchd.KindHLL, Field: "u"}, "bots": {Sketch: sketchd.KindHLL, Field: "b"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "l"}, "urls": {Sketch: sketchd.KindCMS, Field: "url"},
	}
	other := spec
	other.Name = "orders"
	streams := []sketchd.StreamStatus{{Spec: spec}, {Spec: other}}
	h := newTestHandler()
	tests := []struct {
		q       string
		want    []string // stream/aggregate where extra groupBy of each target
		refused string
	}{
		{q: `sketchd_distinct{stream="pv"}`, want: []string{"pv/bots map[] [] [country device]", "pv/users map[] [] [country device]"}},
		{q: `sketchd_distinct{stream=~"pv|orders",aggregate!="bots"}`, want: []string{"pv/users map[] [] [country device]", "orders/users map[] [] [country device]"}},
		{q: `sum by (device) (sketchd_distinct{aggregate="users",country=~"DE|FR",device="m"})`, want: []string{"pv/users map[country:[DE FR] device:[m]] [] [device]", "orders/users map[country:[DE FR] device:[m]] [] [device]"}},
		{q: `sum(sketchd_distinct{stream="pv",aggregate="users",country=~"(DE|FR)",country="FR"})`, want: []string{"pv/users map[country:[FR]] [] []"}},
		{q: `sketchd_distinct{stream="pv",aggregate="users",country="DE",country="FR"}`, want: nil},
		{q: `sketchd_distinct{stream="pv",aggregate="users",country=~".*"}`, want: []string{"pv/users map[] [] [country device]"}},
		{q: `sketchd_distinct{stream="pv",aggregate="users",host="h1"}`, want: nil},
		{q: `sketchd_distinct{stream="pv",aggregate="users",host=""}`, want: []string{"pv/users map[] [] [country device]"}},
		{q: `sketchd_count{stream="pv"}`, want: []string{"pv/bots map[] [] [country device]"}},
		{q: `sketchd_count{stream="pv",aggregate="users"}`, want: nil},
		{q: `sketchd_quantile{stream="pv"}`, want: []string{"pv/latency map[] [0.5 0.9 0.99] [country device]"}},
		{q: `sketchd_quantile{stream="pv",quantile=~"0.5|0.999"}`, want: []string{"pv/latency map[] [0.5 0.999] [country device]"}},
		{q: `sketchd_top_count{stream="pv",item=~"/a|/b"}`, want: []string{"pv/urls map[] [/a /b] [country device]"}},
		{q: `sketchd_distinct{country!="DE"}`, refused: `country!="DE"`},
		{q: `sketchd_distinct{country!~"DE"}`, refused: `only = and =~`},
		{q: `sketchd_distinct{country=~"D.+"}`, refused: "alternation of literal values"},
		{q: `sketchd_distinct{country=~"(?i)de"}`, refused: "alternation of literal values"},
		{q: `sketchd_quantile{quantile="p99"}`, refused: "want a number in [0, 1]"},
		{q: `sketchd_top_count{item=~".+"}`, refused: "alternation of literal values"},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			p, err := h.compile(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			ts, err := p.sel.targets(streams)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("targets: %v, want an error containing %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tg := range ts {
				got = append(got, tg.status.Spec.Name+"/"+tg.aggregate+" "+fmtWhere(tg.where)+" "+fmtList(tg.extra)+" "+fmtList(tg.groupBy))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("targets\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func fmtList(s []string) string { return "[" + strings.Join(s, " ") + "]" }

func fmtWhere(w map[string][]string) string {
	var parts []string
	for _, d := range []string{"country", "device"} {
		if v, ok := w[d]; ok {
			parts = append(parts, d+":"+fmtList(v))
		}
	}
	return "map[" + strings.Join(parts, " ") + "]"
}

func TestLiteralDots(t *testing.T) {
	tests := []struct {
		re   string
		want []string
	}{
		{"0.5|0.99", []string{"0.5", "0.99"}},
		{`0\.5|0.9`, []string{"0.5", "0.9"}},
		{"example.com", []string{"example.com"}},
		{"DE|FR", nil}, // no dot: SetMatches already answers
		{"a.*", nil},
		{"a.+|b", nil},
	}
	for _, tt := range tests {
		got := literalDots(tt.re)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("literalDots(%q) = %q, want %q", tt.re, got, tt.want)
		}
		m := labels.MustNewMatcher(labels.MatchRegexp, "x", tt.re)
		for _, v := range got {
			if !m.Matches(v) {
				t.Errorf("%q: value %q does not match the regular expression", tt.re, v)
			}
		}
	}
}

// FuzzCompile: no query string makes the mapping panic; what it accepts
// the upstream parser accepts.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{`sum by (country) (sketchd_distinct{stream="pv",country=~"DE|FR"})`,
		`sketchd_quantile{quantile=~"0.5|0.99"}`, `1+1`, `rate(x[5m])`, `{__name__=~".+"}`, `sum(`} {
		f.Add(s)
	}
	h := newTestHandler()
	p := parser.NewParser(parser.Options{})
	spec := sketchd.DefaultStream()
	spec.Name, spec.GroupBy = "pv", []string{"country"}
	spec.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "u"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "l"}, "urls": {Sketch: sketchd.KindCMS, Field: "url"}}
	streams := []sketchd.StreamStatus{{Spec: spec}}
	f.Fuzz(func(t *testing.T, q string) {
		prog, err := h.compile(q)
		if err != nil {
			return
		}
		if _, perr := p.ParseExpr(q); perr != nil {
			t.Fatalf("compile accepted %q, which the parser refuses: %v", q, perr)
		}
		if prog.sel != nil {
			_, _ = prog.sel.targets(streams)
		}
	})
}
