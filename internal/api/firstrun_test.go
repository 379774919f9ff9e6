package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDefaultRangeIsWholePanes: with now inside a pane, a query without
// from and to covers exactly one hour of whole panes, ending with the pane
// holding now, not 61 of them; a given to is kept.
func TestDefaultRangeIsWholePanes(t *testing.T) {
	now := t0.Add(fixtureSpan - 30*time.Second) // inside the last pane
	f := newFixture(t, func(c *Config) { c.Now = func() time.Time { return now } })
	paneEnd := t0.Add(fixtureSpan) // the end of the pane holding now
	tests := []struct {
		name, query      string
		wantFrom, wantTo time.Time
		wantWindows      int
	}{
		{"default", "", paneEnd.Add(-time.Hour), paneEnd, 1},
		{"default with step", "?step=5m", paneEnd.Add(-time.Hour), paneEnd, 12},
		{"from given", "?from=" + now.Add(-2*time.Hour).Format(time.RFC3339), now.Add(-2 * time.Hour).Truncate(time.Minute), paneEnd, 1},
		{"to given is kept", "?to=" + now.Format(time.RFC3339), now.Add(-time.Hour).Truncate(time.Minute), paneEnd, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res struct {
				From, To string
				Groups   []struct {
					Windows []struct{ Events uint64 }
				}
			}
			f.getJSON(t, aggPath+"users"+tt.query, &res)
			if res.From != tt.wantFrom.Format(time.RFC3339) || res.To != tt.wantTo.Format(time.RFC3339) {
				t.Errorf("covered [%s, %s), want [%s, %s)", res.From, res.To,
					tt.wantFrom.Format(time.RFC3339), tt.wantTo.Format(time.RFC3339))
			}
			if len(res.Groups) != 1 || len(res.Groups[0].Windows) != tt.wantWindows {
				t.Fatalf("want one group of %d windows: %+v", tt.wantWindows, res.Groups)
			}
			var events uint64
			for _, w := range res.Groups[0].Windows {
				events += w.Events
			}
			if want := uint64(len(f.truth(tt.wantFrom, tt.wantTo, nil))); events != want {
				t.Errorf("%d events, want %d (the events of the covered range)", events, want)
			}
		})
	}
}

// TestPretty: ?pretty (or pretty=1, pretty=true) indents JSON answers and
// problems; the answer is otherwise the same; other parameters still apply
// and are still checked.
func TestPretty(t *testing.T) {
	f := newFixture(t)
	compact := func(b []byte) string {
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			t.Fatalf("not JSON: %v: %s", err, b)
		}
		return buf.String()
	}
	for _, target := range []string{"/v1/streams", aggPath + "latency?q=0.5&group_by=country", "/livez"} {
		plain := f.get(t, target)
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		for _, p := range []string{"pretty", "pretty=1", "pretty=true"} {
			r := f.get(t, target+sep+p)
			if r.status != http.StatusOK {
				t.Fatalf("%s%s%s: status %d: %s", target, sep, p, r.status, r.body)
			}
			if !bytes.Contains(r.body, []byte("\n  \"")) {
				t.Errorf("%s%s%s is not indented: %s", target, sep, p, r.body)
			}
			if compact(r.body) != compact(plain.body) {
				t.Errorf("%s%s%s answers differently from %s", target, sep, p, target)
			}
		}
		if r := f.get(t, target+sep+"pretty=0"); !bytes.Equal(r.body, plain.body) {
			t.Errorf("%s%spretty=0 is not the compact answer: %s", target, sep, r.body)
		}
	}
	// Problems are indented too, and pretty does not hide a bad parameter.
	r := f.get(t, aggPath+"latency?pretty&q=2")
	if p := r.problem(t); r.status != http.StatusBadRequest || p.Parameter != "q" || !bytes.Contains(r.body, []byte("\n  \"")) {
		t.Errorf("status %d, %s", r.status, r.body)
	}
	r = f.get(t, "/v1/streams?pretty=yes")
	if p := r.problem(t); r.status != http.StatusBadRequest || p.Parameter != "pretty" {
		t.Errorf("pretty=yes: status %d, %s", r.status, r.body)
	}
}
