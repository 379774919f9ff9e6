package querymix

import (
	"encoding/json"
	"io"
	"strings"
)

// Dashboard is the dashboard scenario of the load tests: Panels requests,
// each with the placeholder {v} for the dashboard's filter value, and
// Values; a user viewing the dashboard with value v refreshes every panel
// with {v} = v. len(Panels) × len(Values) distinct queries.
type Dashboard struct {
	Panels []Query  `json:"panels"`
	Values []string `json:"values"`
	Field  string   `json:"field"`
}

// DashboardOf returns the dashboard of a stream with the mix's aggregates
// (users, urls, latency, sample), filtered by country: 10 panels over the
// last hour (series at 1- and 5-minute steps, top urls, quantiles, a CDF,
// groups by device, a sample, one multi-aggregate request) × the
// generator's 20 countries = 200 distinct queries.
func DashboardOf(stream string) Dashboard {
	a := "/v1/streams/" + stream + "/aggregates/"
	w := "where=country={v}"
	p := func(name, path string) Query { return Query{Name: name, Range: "1h", Path: path, Weight: 1} }
	return Dashboard{
		Field: "country",
		Panels: []Query{
			p("users_1m", a+"users?step=1m&"+w),
			p("users_by_device", a+"users?group_by=device&"+w),
			p("urls_top", a+"urls?top=10&"+w),
			p("urls_top_5m", a+"urls?step=5m&top=5&"+w),
			p("latency_1m", a+"latency?step=1m&q=0.5,0.99&"+w),
			p("latency_by_device", a+"latency?group_by=device&q=0.99&"+w),
			p("latency_cdf", a+"latency?cdf=100,250&"+w),
			p("latency_5m", a+"latency?step=5m&q=0.9&"+w),
			p("sample", a+"sample?n=5&"+w),
			p("multi_5m", "/v1/streams/"+stream+"/query?aggregate=users,latency&step=5m&q=0.99&"+w),
		},
		// The generator's countries (internal/gen).
		Values: []string{"US", "DE", "IN", "BR", "GB", "FR", "JP", "CA", "ES", "IT",
			"MX", "NL", "AU", "KR", "SE", "PL", "TR", "AR", "ZA", "NG"},
	}
}

// Paths returns the dashboard's requests for value v.
func (d Dashboard) Paths(v string) []string {
	out := make([]string, len(d.Panels))
	for i, p := range d.Panels {
		out[i] = strings.ReplaceAll(p.Path, "{v}", v)
	}
	return out
}

// WriteJSON writes the dashboard as the k6 script reads it (DASHBOARD file).
func (d Dashboard) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}
