package api

import (
	"net/http"
	"testing"
	"time"
)

// TestOmitEmpty: with omit_empty=true a series over a range wider than the
// data leaves out exactly the windows without events, and keeps the others
// as the default answer has them; without it (or false) every window is
// there; a value that is not a boolean is 400 invalid_parameter.
func TestOmitEmpty(t *testing.T) {
	f := newFixture(t)
	// An hour of nothing on each side of the data, 10-minute steps.
	base := join(rangeQuery(t0.Add(-time.Hour), t0.Add(fixtureSpan+time.Hour)), "group_by=country", "step=10m")
	var all, omitted, explicit resT
	f.getJSON(t, aggPath+"users?"+base, &all)
	f.getJSON(t, aggPath+"users?"+base+"&omit_empty=true", &omitted)
	f.getJSON(t, aggPath+"users?"+base+"&omit_empty=false", &explicit)
	if len(all.Groups) != len(countries) || len(explicit.Groups) != len(all.Groups) {
		t.Fatalf("groups: default %d, omit_empty=false %d, want %d", len(all.Groups), len(explicit.Groups), len(countries))
	}
	if len(omitted.Groups) != len(all.Groups) {
		t.Fatalf("omit_empty=true: %d groups, want %d (every country has events)", len(omitted.Groups), len(all.Groups))
	}
	for gi, g := range all.Groups {
		if n := len(g.Windows); n != 24 || len(explicit.Groups[gi].Windows) != n {
			t.Errorf("group %v: %d windows by default, want 24 (4h / 10m)", g.Key, n)
		}
		var want []winT
		for _, w := range g.Windows {
			if w.Events > 0 {
				want = append(want, w)
			}
		}
		got := omitted.Groups[gi].Windows
		if len(want) == 0 || len(want) >= len(g.Windows) {
			t.Fatalf("group %v: %d of %d windows have events; the test needs some empty", g.Key, len(want), len(g.Windows))
		}
		if len(got) != len(want) {
			t.Fatalf("group %v: omit_empty kept %d windows, want the %d with events", g.Key, len(got), len(want))
		}
		for i := range want {
			if got[i].Start != want[i].Start || got[i].Events != want[i].Events || got[i].Distinct.Estimate != want[i].Distinct.Estimate {
				t.Errorf("group %v window %d: %+v, want %+v", g.Key, i, got[i], want[i])
			}
		}
	}
	// A range with no data at all: every group is left out.
	var none resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(t0.Add(fixtureSpan+time.Hour), t0.Add(fixtureSpan+2*time.Hour)), "step=10m", "omit_empty=1"), &none)
	if len(none.Groups) != 0 {
		t.Errorf("omit_empty over a range without events: %d groups, want none", len(none.Groups))
	}
	r := f.get(t, aggPath+"users?"+base+"&omit_empty=yes")
	if p := r.problem(t); r.status != http.StatusBadRequest || p.Code != codeInvalidParameter || p.Parameter != "omit_empty" {
		t.Errorf("omit_empty=yes: %d %+v", r.status, p)
	}
	r = f.get(t, "/v1/streams/pageviews/aggregates/users/sketch?"+rangeQuery(fullFrom, fullTo)+"&omit_empty=true")
	if p := r.problem(t); r.status != http.StatusBadRequest || p.Parameter != "omit_empty" {
		t.Errorf("omit_empty on the sketch endpoint: %d %+v", r.status, p)
	}
}
