package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

// TestDashboardFirstLoad asks a real HTTP server: every panel once per
// value, the filter value in place of {v}, failures counted, and the
// report's line.
func TestDashboardFirstLoad(t *testing.T) {
	d := querymix.DashboardOf("pv")
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.RequestURI()]++
		mu.Unlock()
		if r.URL.Query().Get("where") == d.Field+"="+d.Values[0] && strings.Contains(r.URL.Path, "/sample") {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	defer srv.Close()
	l, err := dashboardFirstLoad(t.Context(), newClient(srv.URL), d)
	if err != nil {
		t.Fatal(err)
	}
	want := len(d.Panels) * len(d.Values)
	if l.Requests != want || l.Errors != 1 || len(seen) != want {
		t.Fatalf("requests %d, errors %d, distinct URLs %d; want %d, 1, %d", l.Requests, l.Errors, len(seen), want, want)
	}
	for u, n := range seen {
		if n != 1 || strings.Contains(u, "{v}") || !strings.Contains(u, "where="+d.Field+"%3D") && !strings.Contains(u, "where="+d.Field+"=") {
			t.Errorf("%s asked %d times", u, n)
		}
	}
	var b strings.Builder
	renderDashboard(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, &Results{Config: Config{DashVUs: 50},
		Dashboard: &QueryLoad{Tool: "k6 dashboard", Rate: 100, FirstLoad: &Latency{Requests: 200, P50: 3, P90: 9, P99: 40, Max: 55, Errors: 1}}})
	if w := "asked each of the 200 questions once"; !strings.Contains(b.String(), w) || !strings.Contains(b.String(), "p99 40.00 ms, max 55.00 ms, 1 errors") {
		t.Errorf("report lacks the first load:\n%s", b.String())
	}
}
