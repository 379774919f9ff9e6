package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestWhereFilters: negation and set filters through the real router over
// a real Badger store, against an exact filter of the generated events.
func TestWhereFilters(t *testing.T) {
	f := newStoreFixture(t)
	tests := []struct {
		name  string
		where []string
		keep  func(*tev) bool
	}{
		{"equal", []string{"country=de"}, func(e *tev) bool { return e.country == "de" }},
		{"not equal", []string{"country!=de"}, func(e *tev) bool { return e.country != "de" }},
		{"in", []string{"country:in=de,us"}, func(e *tev) bool { return e.country == "de" || e.country == "us" }},
		{"not in", []string{"country:not_in=de,us"}, func(e *tev) bool { return e.country == "fr" }},
		{"in one", []string{"device:in=mobile"}, func(e *tev) bool { return e.device == "mobile" }},
		{"repeated equal is a set", []string{"country=de", "country=fr"}, func(e *tev) bool { return e.country != "us" }},
		{"in and not equal, same dim", []string{"country:in=de,fr", "country!=fr"}, func(e *tev) bool { return e.country == "de" }},
		{"not in and not equal", []string{"country:not_in=de", "country!=us"}, func(e *tev) bool { return e.country == "fr" }},
		{"across dims", []string{"country!=us", "device:not_in=desktop"}, func(e *tev) bool { return e.country != "us" && e.device != "desktop" }},
		{"in with an absent value", []string{"country:in=de,xx"}, func(e *tev) bool { return e.country == "de" }},
		{"not equal absent", []string{"device!=tablet"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := []string{rangeQuery(subFrom, subTo), "group_by=country,device"}
			for _, w := range tt.where {
				parts = append(parts, "where="+url.QueryEscape(w))
			}
			var res resT
			f.getJSON(t, aggPath+"users?"+join(parts...), &res)
			want := map[[2]string]int{}
			for _, e := range f.truth(subFrom, subTo, tt.keep) {
				want[[2]string{e.country, e.device}]++
			}
			got := map[[2]string]int{}
			for _, g := range res.Groups {
				got[[2]string{g.Key["country"], g.Key["device"]}] = int(g.Windows[0].Events)
			}
			if len(got) != len(want) {
				t.Errorf("groups %v, want %v", got, want)
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("group %v: %d events, want %d", k, got[k], n)
				}
			}
			// The key listing applies the same filters.
			var keys keysJSON
			f.getJSON(t, "/v1/streams/pageviews/keys?"+join(parts[0], strings.Join(parts[2:], "&")), &keys)
			if len(keys.Keys) != len(want) {
				t.Errorf("keys %v, want the %d groups %v", keys.Keys, len(want), want)
			}
		})
	}
}

// TestWhereMisread: a filter that would be read differently than meant is
// refused with the reason, never answered as an empty match.
func TestWhereMisread(t *testing.T) {
	f := newStoreFixture(t)
	tests := []struct {
		name, where, code, wantIn string
	}{
		{"comma after =", "country=de,fr", codeAmbiguousFilter, "country:in=v1,v2"},
		{"double equal", "country==de", codeAmbiguousFilter, "taken literally"},
		{"bang after =", "country=!de", codeAmbiguousFilter, "country:not_in=v1,v2"},
		{"comma after !=", "country!=de,fr", codeAmbiguousFilter, "excludes nothing"},
		{"paren list", "country=(de,fr)", codeAmbiguousFilter, "country:in="},
		{"field not a dimension", "url=/p/1", codeInvalidParameter, `"url" is read by aggregate "urls"`},
		{"aggregate name", "latency!=3", codeInvalidParameter, `"latency" is read by aggregate "latency"`},
		{"unknown field", "browser=x", codeInvalidParameter, "only dimensions can select keys"},
		{"no operator", "country", codeInvalidParameter, "dimension:in=v1,v2"},
		{"empty list element", "country:in=de,,fr", codeInvalidParameter, "empty element"},
		{"unknown op", "country:like=d", codeInvalidParameter, `"country:like" is not a dimension`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{aggPath + "users?", "/v1/streams/pageviews/keys?"} {
				r := f.get(t, path+join(rangeQuery(subFrom, subTo), "where="+url.QueryEscape(tt.where)))
				if r.status != http.StatusBadRequest {
					t.Fatalf("%s where=%s: status %d, want 400: %s", path, tt.where, r.status, r.body)
				}
				p := r.problem(t)
				if p.Code != tt.code || p.Parameter != "where" || !strings.Contains(p.Detail, tt.wantIn) {
					t.Errorf("%s: code %q (parameter %q), detail %q; want %s and %q in it", path, p.Code, p.Parameter, p.Detail, tt.code, tt.wantIn)
				}
			}
		})
	}
	// A literal value with a comma that a key has is answered.
	var res resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(subFrom, subTo), "where=country=de", "where="+url.QueryEscape("device:in=mobile,desktop")), &res)
	if want := len(f.truth(subFrom, subTo, func(e *tev) bool { return e.country == "de" })); int(res.Groups[0].Windows[0].Events) != want {
		t.Errorf("events %d, want %d", res.Groups[0].Windows[0].Events, want)
	}
}
