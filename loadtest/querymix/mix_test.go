package querymix

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite ../k6/mix.json")

func TestMixCoversEveryKind(t *testing.T) {
	mix := Mix("pv")
	total, byRange := 0, map[string]int{}
	seen := map[string]bool{}
	for _, q := range mix {
		if q.Weight <= 0 {
			t.Errorf("%s: weight %d", q.Name, q.Weight)
		}
		total += q.Weight
		byRange[q.Range] += q.Weight
		for _, frag := range []string{"/users", "/urls", "/latency", "/sample", "where=", "group_by=", "step=", "/keys"} {
			if strings.Contains(q.Path, frag) {
				seen[frag+" "+q.Range] = true
			}
		}
		if (q.Range == "24h") != (q.FromAgo == 86400) || (q.Range == "30d") != (q.FromAgo == 30*86400) {
			t.Errorf("%s: range %s with from_ago %d", q.Name, q.Range, q.FromAgo)
		}
	}
	if total != 108 || byRange["1h"] != 82 || byRange["24h"] != 18 || byRange["30d"] != 8 {
		t.Errorf("weights: total %d, %v", total, byRange)
	}
	for _, want := range []string{"/users 1h", "/urls 1h", "/latency 1h", "/sample 1h", "where= 1h", "group_by= 1h", "step= 1h",
		"/users 24h", "/urls 24h", "/latency 24h", "/sample 24h", "where= 24h", "step= 24h",
		"/users 30d", "/urls 30d", "/latency 30d", "where= 30d", "group_by= 30d", "step= 30d"} {
		if !seen[want] {
			t.Errorf("the mix has no %s query", want)
		}
	}
}

func TestInterleave(t *testing.T) {
	mix := []Query{{Name: "a", Weight: 3}, {Name: "b", Weight: 1}, {Name: "c", Weight: 2}}
	got := Interleave(mix)
	var names []string
	for _, q := range got {
		names = append(names, q.Name)
	}
	if s := strings.Join(names, ""); s != "acabca" {
		t.Errorf("Interleave = %s, want acabca", s)
	}
	// Every 30 consecutive requests of the expanded mix (108) has each
	// query of weight ≥ 4 at least once.
	full := Interleave(Mix("pv"))
	for i := 0; i+30 <= len(full); i++ {
		in := map[string]bool{}
		for _, q := range full[i : i+30] {
			in[q.Name] = true
		}
		for _, q := range Mix("pv") {
			if q.Weight >= 4 && !in[q.Name] {
				t.Fatalf("requests %d..%d lack %s", i, i+30, q.Name)
			}
		}
	}
}

func TestURLAndVegeta(t *testing.T) {
	now := time.Unix(1795600800, 0)
	q := Query{Path: "/v1/streams/pv/aggregates/users?step=1h", FromAgo: 86400}
	if got, want := q.URL("http://h:1/", now), "http://h:1/v1/streams/pv/aggregates/users?step=1h&from=1795514400"; got != want {
		t.Errorf("URL = %s, want %s", got, want)
	}
	q = Query{Path: "/v1/streams/pv/aggregates/users", FromAgo: 60}
	if got := q.URL("http://h:1", now); !strings.HasSuffix(got, "users?from=1795600740") || RangeAt(got, now) != "24h" {
		t.Errorf("URL = %s (range %s)", got, RangeAt(got, now))
	}
	q = Query{Path: "/v1/streams/pv/aggregates/users?step=1d", FromAgo: 30 * 86400}
	if got := q.URL("http://h:1", now); RangeAt(got, now) != "30d" || RangeAt(got+"&top=3", now) != "30d" {
		t.Errorf("URL = %s: range %s, want 30d", got, RangeAt(got, now))
	}
	if RangeOf("http://h/v1/streams/pv/aggregates/users?where=x=from") != "1h" {
		t.Error("RangeOf misreads a where value")
	}
	var b bytes.Buffer
	if err := WriteVegeta(&b, Mix("pv"), "http://127.0.0.1:8080", now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n\n")
	if len(lines) != 108 {
		t.Fatalf("%d targets, want 108", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "GET http://127.0.0.1:8080/v1/streams/pv") || strings.Contains(l, "\n") {
			t.Errorf("target %q", l)
		}
	}
}

// The k6 script reads loadtest/k6/mix.json: it must be the mix of this
// package (go test ./loadtest/querymix -update rewrites it).
func TestK6MixUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, Mix("pv")); err != nil {
		t.Fatal(err)
	}
	const path = "../k6/mix.json"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Errorf("%s is stale: go test ./loadtest/querymix -update", path)
	}
}

// The dashboard scenario is 10 panels × 20 filter values = 200 distinct
// requests.
func TestDashboardDistinct(t *testing.T) {
	d := DashboardOf("pv")
	seen := map[string]bool{}
	for _, v := range d.Values {
		for _, p := range d.Paths(v) {
			if strings.Contains(p, "{v}") || !strings.Contains(p, "where=country="+v) {
				t.Errorf("path %s for %s", p, v)
			}
			seen[p] = true
		}
	}
	if len(d.Panels) != 10 || len(d.Values) != 20 || len(seen) != 200 {
		t.Errorf("%d panels × %d values: %d distinct paths, want 10 × 20 = 200", len(d.Panels), len(d.Values), len(seen))
	}
}
