package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestMultiAggregate: one request answering several aggregates gives, for
// each, exactly the answer of its own endpoint (real Badger, real router).
func TestMultiAggregate(t *testing.T) {
	f := newStoreFixture(t)
	tests := []struct {
		name, aggs, common string
		kind               []string // per aggregate, its kind parameters
	}{
		{"whole range", "aggregate=users&aggregate=latency&aggregate=urls", rangeQuery(fullFrom, fullTo) + "&q=0.5,0.99&top=3&rank=100&trim=0.05",
			[]string{"", "q=0.5,0.99&rank=100&trim=0.05", "top=3"}},
		{"series per group, filtered", "aggregate=users,latency,sample,urls",
			rangeQuery(subFrom, subTo) + "&step=10m&group_by=device&where=country!=us&n=2&item=/p/1",
			[]string{"", "", "n=2", "item=/p/1"}},
		{"sliding", "aggregate=latency&aggregate=users", rangeQuery(subFrom, subTo) + "&step=5m&window=15m&where=country:in=de,fr",
			[]string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var multi struct {
				Keys    int               `json:"keys"`
				Results []json.RawMessage `json:"results"`
			}
			f.getJSON(t, "/v1/streams/pageviews/query?"+tt.aggs+"&"+tt.common, &multi)
			names := strings.Split(strings.NewReplacer("aggregate=", "", "&", ",").Replace(tt.aggs), ",")
			if len(multi.Results) != len(names) {
				t.Fatalf("%d results, want %d", len(multi.Results), len(names))
			}
			common := []string{}
			for _, p := range strings.Split(tt.common, "&") {
				if k, _, _ := strings.Cut(p, "="); len(paramKinds(k)) == 0 {
					common = append(common, p)
				}
			}
			for i, n := range names {
				q := strings.Join(common, "&")
				if tt.kind[i] != "" {
					q += "&" + tt.kind[i]
				}
				r := f.get(t, aggPath+n+"?"+q)
				if r.status != http.StatusOK {
					t.Fatalf("%s: %d %s", n, r.status, r.body)
				}
				if got, want := compact(t, multi.Results[i]), compact(t, r.body); !bytes.Equal(got, want) {
					t.Errorf("%s: multi answer\n%s\nwant the single answer\n%s", n, got, want)
				}
			}
		})
	}
}

func compact(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// TestMultiAggregateErrors: what the multi-aggregate endpoint refuses.
func TestMultiAggregateErrors(t *testing.T) {
	f := newStoreFixture(t)
	tests := []struct {
		query       string
		status      int
		code, param string
	}{
		{"", 400, codeInvalidParameter, "aggregate"},
		{"aggregate=users&aggregate=users", 400, codeInvalidParameter, "aggregate"},
		{"aggregate=users&aggregate=nope", 404, codeAggregateNotFound, ""},
		{"aggregate=users&q=0.5", 400, codeInvalidParameter, "q"},
		{"aggregate=users&order_by=distinct", 400, codeInvalidParameter, "order_by"},
		{"aggregate=users&bogus=1", 400, codeInvalidParameter, "bogus"},
		{"aggregate=users,latency&where=country=de,fr", 400, codeAmbiguousFilter, "where"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := f.get(t, "/v1/streams/pageviews/query?"+tt.query)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if p := r.problem(t); p.Code != tt.code || p.Parameter != tt.param {
				t.Errorf("code %s parameter %q, want %s %q", p.Code, p.Parameter, tt.code, tt.param)
			}
		})
	}
}
