package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestPromAPIThetaDDSketch: theta aggregates answer the distinct-count
// metrics and ddsketch aggregates the quantile metrics, each sample equal
// to the /v1 number of its window.
func TestPromAPIThetaDDSketch(t *testing.T) {
	f := newKindsFixture(t)
	end := strconv.FormatInt(t0.Add(30*time.Minute).Unix(), 10)
	v1 := url.Values{"from": {t0.Format(time.RFC3339)}, "to": {t0.Add(30 * time.Minute).Format(time.RFC3339)}, "step": {"30m"}}
	with := func(kv ...string) url.Values {
		q := url.Values{}
		for k, v := range v1 {
			q[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q
	}
	tests := []struct {
		name, query, v1Path string
		v1                  url.Values
		fixed               map[string]string
		value               func(w *v1Window, add func(string, float64))
	}{
		{
			name: "theta distinct per key", query: `sketchd_distinct{stream="shop",aggregate="users"}`,
			v1Path: "/v1/streams/shop/aggregates/users", v1: with("group_by", "url"),
			fixed: map[string]string{"__name__": "sketchd_distinct", "stream": "shop", "aggregate": "users"},
			value: func(w *v1Window, add func(string, float64)) { add("", w.Distinct.Estimate) },
		},
		{
			name: "theta lower bound, all keys", query: `sum(sketchd_distinct_lower{aggregate="users"})`,
			v1Path: "/v1/streams/shop/aggregates/users", v1: with(),
			fixed: map[string]string{"stream": "shop", "aggregate": "users"},
			value: func(w *v1Window, add func(string, float64)) { add("", w.Distinct.Lower) },
		},
		{
			name: "ddsketch quantiles by url", query: `sum by (url) (sketchd_quantile{aggregate="lat",quantile=~"0.5|0.99"})`,
			v1Path: "/v1/streams/shop/aggregates/lat", v1: with("group_by", "url", "q", "0.5,0.99"),
			fixed: map[string]string{"stream": "shop", "aggregate": "lat"},
			value: func(w *v1Window, add func(string, float64)) {
				for _, q := range w.Quantiles {
					add("quantile="+strconv.FormatFloat(q.Q, 'f', -1, 64), *q.Value)
				}
			},
		},
		{
			name: "ddsketch upper bound", query: `sum(sketchd_quantile_upper{aggregate="lat",quantile="0.9"})`,
			v1Path: "/v1/streams/shop/aggregates/lat", v1: with("q", "0.9"),
			fixed: map[string]string{"stream": "shop", "aggregate": "lat"},
			value: func(w *v1Window, add func(string, float64)) { add("quantile=0.9", *w.Quantiles[0].Upper) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := f.v1Samples(t, tt.v1Path, tt.v1, tt.fixed, 0, tt.value)
			if len(want) == 0 {
				t.Fatal("the /v1 answer has no samples: the case checks nothing")
			}
			got, _ := f.promSamples(t, http.MethodGet, "/api/v1/query_range", url.Values{"query": {tt.query}, "start": {end}, "end": {end}, "step": {"1800"}})
			sortSamples(got)
			sortSamples(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s:\n got %v\nwant %v", tt.query, got, want)
			}
		})
	}
}
