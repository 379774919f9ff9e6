package api

import (
	"net/url"
	"testing"
	"time"
)

func TestParseRelativeTimes(t *testing.T) {
	// A Wednesday, mid-morning.
	now := time.Date(2026, 11, 25, 10, 17, 42, 500e6, time.UTC)
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		roundUp bool
		want    time.Time
		ok      bool
	}{
		{"now", false, now, true},
		{"now-1h", false, now.Add(-time.Hour), true},
		{"now+30s", false, now.Add(30 * time.Second), true},
		{"now-90m", false, now.Add(-90 * time.Minute), true},
		{"now-1d/d", false, day.AddDate(0, 0, -1), true},
		{"now-1d/d", true, day, true}, // to: the end of yesterday
		{"now/d", false, day, true},
		{"now/d", true, day.AddDate(0, 0, 1), true},
		{"now/h", false, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), true},
		{"now/w", false, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), true}, // Monday
		{"now-1M/M", false, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), true},
		{"now-2y/y", false, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"now-1w-2d", false, now.AddDate(0, 0, -9), true},
		{"now-", false, time.Time{}, false},
		{"now-1", false, time.Time{}, false},
		{"now-1x", false, time.Time{}, false},
		{"now/x", false, time.Time{}, false},
		{"now-1h/", false, time.Time{}, false},
		{"now-1h/dd", false, time.Time{}, false},
		{"nowish", false, time.Time{}, false},
		{"now-9999999y", false, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeValue(tt.in, now, tt.roundUp)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want.UnixNano()) {
				t.Errorf("parseTimeValue(%q, roundUp %v) = %s, %v; want %s, ok %v", tt.in, tt.roundUp, time.Unix(0, got).UTC(), err, tt.want, tt.ok)
			}
		})
	}
}

// TestQueryDashboardTimes: the same query with relative times, millisecond
// epochs and RFC 3339 gives the same answer.
func TestQueryDashboardTimes(t *testing.T) {
	f := newFixture(t) // now is t0 + 2h
	now := t0.Add(fixtureSpan)
	want := f.get(t, "/v1/streams/pageviews/aggregates/users?"+rangeQuery(now.Add(-time.Hour), now)+"&step=10m")
	if want.status != 200 {
		t.Fatalf("%d %s", want.status, want.body)
	}
	for _, q := range []url.Values{
		{"from": {"now-1h"}, "to": {"now"}},
		{"from": {"now-1h"}},
		{"from": {"1795604400000"}, "to": {"1795608000000"}},
		{"from": {"1795604400000"}, "to": {"now"}},
	} {
		q.Set("step", "10m")
		got := f.get(t, "/v1/streams/pageviews/aggregates/users?"+q.Encode())
		if got.status != 200 || string(got.body) != string(want.body) {
			t.Errorf("%v: %d %s\nwant %s", q, got.status, got.body, want.body)
		}
	}
	// "Today" in Grafana: from=now/d&to=now/d covers the whole day.
	r := f.get(t, "/v1/streams/pageviews/aggregates/users?from=now/d&to=now/d")
	if r.status != 200 {
		t.Fatalf("today: %d %s", r.status, r.body)
	}
	var a struct{ From, To time.Time }
	f.getJSON(t, "/v1/streams/pageviews/aggregates/users?from=now/d&to=now/d", &a)
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	if !a.From.Equal(day) || !a.To.Equal(day.AddDate(0, 0, 1)) {
		t.Errorf("today: from %s to %s, want the day %s", a.From, a.To, day)
	}
	if p := f.get(t, "/v1/streams/pageviews/aggregates/users?from=now-1q").problem(t); p.Code != codeInvalidParameter || p.Parameter != "from" {
		t.Errorf("now-1q: %+v, want invalid_parameter from", p)
	}
}
