package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestAuth(t *testing.T) {
	const admin, read = "admin-secret-token", "read-secret-token"
	f := newFixture(t, func(c *Config) { c.AdminToken, c.ReadToken = admin, read })
	tests := []struct {
		name   string
		method string
		target string
		auth   string
		status int
		code   string
	}{
		{"read without token", "GET", "/v1/streams", "", 401, "unauthorized"},
		{"read wrong token", "GET", "/v1/streams", "Bearer nope", 401, "unauthorized"},
		{"read wrong scheme", "GET", "/v1/streams", "Basic " + read, 401, "unauthorized"},
		{"read with read token", "GET", "/v1/streams", "Bearer " + read, 200, ""},
		{"read with admin token", "GET", aggPath + "users", "Bearer " + admin, 200, ""},
		{"admin without token", "DELETE", "/v1/streams/pageviews", "", 401, "unauthorized"},
		{"admin wrong token", "POST", "/v1/streams", "Bearer nope", 401, "unauthorized"},
		{"admin with read token", "DELETE", "/v1/streams/pageviews", "Bearer " + read, 403, "forbidden"},
		{"admin with read token create", "POST", "/v1/streams", "Bearer " + read, 403, "forbidden"},
		{"health needs no token", "GET", "/livez", "", 200, ""},
		{"metrics need no token", "GET", "/metrics", "", 200, ""},
		{"admin with admin token", "DELETE", "/v1/streams/pageviews", "Bearer " + admin, 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			r := f.do(t, tt.method, tt.target, strings.NewReader(""), hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				if p := r.problem(t); p.Code != tt.code {
					t.Errorf("code %q, want %q", p.Code, tt.code)
				}
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
			if strings.Contains(string(r.body), "secret-token") {
				t.Errorf("token echoed: %s", r.body)
			}
		})
	}
}

func TestAuthAdminOnly(t *testing.T) {
	// Only an admin token: reads are open, changes need it.
	f := newFixture(t, func(c *Config) { c.AdminToken = "a" })
	if r := f.get(t, "/v1/streams"); r.status != 200 {
		t.Errorf("read: %d", r.status)
	}
	if r := f.do(t, "DELETE", "/v1/streams/pageviews", nil); r.status != 401 {
		t.Errorf("delete without token: %d", r.status)
	}
}

func TestHealth(t *testing.T) {
	ready := errors.New("nats: not connected")
	f := newFixture(t, func(c *Config) {
		c.Ready = func(context.Context) error { return ready }
	})
	for _, p := range []string{"/livez", "/healthz"} {
		if r := f.get(t, p); r.status != 200 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
	r := f.get(t, "/readyz")
	if r.status != 503 {
		t.Fatalf("readyz: %d", r.status)
	}
	if p := r.problem(t); p.Code != "not_ready" || !strings.Contains(p.Detail, "nats: not connected") {
		t.Errorf("problem %+v", p)
	}
	ready = nil
	if r := f.get(t, "/readyz"); r.status != 200 {
		t.Errorf("readyz when ready: %d %s", r.status, r.body)
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t)
	r := f.get(t, "/v1/streams/nope", "X-Request-Id", "abc-123")
	if r.header.Get("X-Request-Id") != "abc-123" || r.problem(t).RequestID != "abc-123" {
		t.Errorf("request id not echoed: %q", r.header.Get("X-Request-Id"))
	}
	r = f.get(t, "/livez", "X-Request-Id", "bad id with spaces")
	if id := r.header.Get("X-Request-Id"); len(id) != 32 {
		t.Errorf("malformed id not replaced: %q", id)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.get(t, aggPath+"users?"+rangeQuery(subFrom, subTo))
	f.get(t, "/v1/streams/nope")
	f.get(t, "/no/such/route/x1")
	r := f.get(t, "/metrics")
	body := string(r.body)
	for _, want := range []string{
		`sketchd_http_requests_total{code="200",method="GET",route="/v1/streams/{stream}/aggregates/{aggregate}"} 1`,
		`sketchd_http_requests_total{code="404",method="GET",route="/v1/streams/{stream}"} 1`,
		`sketchd_http_request_duration_seconds_count{method="GET",route="/v1/streams/{stream}/aggregates/{aggregate}"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, raw := range []string{"pageviews", "nope", "x1"} {
		if strings.Contains(body, raw) {
			t.Errorf("a raw path (%s) leaked into a label", raw)
		}
	}
	// A second handler on the same registry fails cleanly.
	if _, err := New(Config{Streams: f.streams, Querier: failingQuerier{}, Registry: f.reg}); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

func TestPprof(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Pprof = true })
	if r := f.get(t, "/debug/pprof/"); r.status != 200 {
		t.Errorf("pprof: %d", r.status)
	}
	g := newFixture(t)
	if r := g.get(t, "/debug/pprof/"); r.status != 404 {
		t.Errorf("pprof off: %d", r.status)
	}
}

// TestOpenAPICoversRoutes walks the router and the spec: every route must be
// described and every described operation must be routed.
func TestOpenAPICoversRoutes(t *testing.T) {
	f := newFixture(t)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r := f.get(t, "/openapi.json")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json: %d %q", r.status, r.header.Get("Content-Type"))
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	var routed []string
	err := chi.Walk(f.h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed = append(routed, strings.ToLower(method)+" "+strings.TrimSuffix(route, "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var described []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m != "parameters" {
				described = append(described, m+" "+p)
			}
		}
	}
	slices.Sort(routed)
	slices.Sort(described)
	for _, r := range routed {
		if !slices.Contains(described, r) {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for _, d := range described {
		if !slices.Contains(routed, d) {
			t.Errorf("OpenAPI operation %s is not routed", d)
		}
	}
	// Every $ref resolves.
	var raw map[string]any
	_ = json.Unmarshal(r.body, &raw)
	comps := raw["components"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				sec, _ := comps[parts[0]].(map[string]any)
				if _, ok := sec[parts[1]]; !ok {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(raw)
}

func TestOpenAPIDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, openAPI) {
		t.Error("docs/openapi.json differs from api/openapi.json; copy api/openapi.json over it")
	}
}
