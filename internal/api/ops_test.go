package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
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
			if tt.status == 401 && !strings.Contains(r.problem(t).Detail, "Authorization: Bearer <token>") {
				t.Errorf("401 detail %q does not name the header to send", r.problem(t).Detail)
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

// TestAdminRefusalsChangeNothing: with an admin token configured (alone,
// and with a read token), creating and deleting streams without it is
// refused, and the refused request changes nothing.
func TestAdminRefusalsChangeNothing(t *testing.T) {
	const admin, read = "the-admin-token", "the-read-token"
	body := `{"name":"clicks","subject":"events.clicks","aggregates":{"users":{"sketch":"hll","field":"user"}}}`
	for _, cfgName := range []string{"admin only", "admin and read"} {
		t.Run(cfgName, func(t *testing.T) {
			f := newFixture(t, func(c *Config) {
				c.AdminToken = admin
				if cfgName == "admin and read" {
					c.ReadToken = read
				}
			})
			readHdr := []string{"Authorization", "Bearer " + read}
			if cfgName == "admin only" {
				readHdr = nil
			}
			refused := []struct {
				name, auth string
				status     int
			}{
				{"no token", "", 401},
				{"wrong token", "Bearer nope", 401},
				{"admin token prefix", "Bearer " + admin[:len(admin)-1], 401},
				{"admin token plus a byte", "Bearer " + admin + "x", 401},
				{"admin token upper case", "Bearer " + strings.ToUpper(admin), 401},
				{"admin token as Basic", "Basic " + admin, 401},
				{"bearer without token", "Bearer ", 401},
			}
			if cfgName == "admin and read" {
				refused = append(refused, struct {
					name, auth string
					status     int
				}{"read token", "Bearer " + read, 403})
			}
			for _, tt := range refused {
				var hdr []string
				if tt.auth != "" {
					hdr = []string{"Authorization", tt.auth}
				}
				post := f.do(t, "POST", "/v1/streams", strings.NewReader(body), append(hdr, "Content-Type", "application/json")...)
				del := f.do(t, "DELETE", "/v1/streams/pageviews", nil, hdr...)
				for _, r := range []response{post, del} {
					if r.status != tt.status {
						t.Errorf("%s: status %d, want %d: %s", tt.name, r.status, tt.status, r.body)
					}
				}
				if r := f.get(t, "/v1/streams/clicks", readHdr...); r.status != 404 {
					t.Errorf("%s: a refused POST created the stream (%d)", tt.name, r.status)
				}
				if r := f.get(t, "/v1/streams/pageviews", readHdr...); r.status != 200 {
					t.Errorf("%s: a refused DELETE removed the stream (%d)", tt.name, r.status)
				}
			}
			// Surrounding spaces are not part of the token.
			if r := f.do(t, "POST", "/v1/streams", strings.NewReader(body), "Authorization", "Bearer  "+admin+" ", "Content-Type", "application/json"); r.status != 201 {
				t.Errorf("create with the admin token: %d %s", r.status, r.body)
			}
			if r := f.do(t, "DELETE", "/v1/streams/clicks", nil, "Authorization", "bearer "+admin); r.status != 204 {
				t.Errorf("delete with the admin token: %d %s", r.status, r.body)
			}
		})
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
	tests := []struct {
		target string
		status int
	}{
		{"/debug/pprof/", 200},
		{"/debug/pprof/heap", 200},
		{"/debug/pprof/goroutine?debug=1", 200},
		{"/debug/pprof/symbol", 200},
		{"/debug/pprof/nope", 404},
		// The command line may hold tokens given as flags: never served.
		{"/debug/pprof/cmdline", 404},
		{"/debug/vars", 404},
	}
	for _, tt := range tests {
		r := f.get(t, tt.target)
		if r.status != tt.status {
			t.Errorf("%s: %d, want %d", tt.target, r.status, tt.status)
		}
		for _, arg := range os.Args {
			if len(arg) > 8 && bytes.Contains(r.body, []byte(arg)) {
				t.Errorf("%s shows the command line (%q)", tt.target, arg)
			}
		}
	}
	if r := f.get(t, "/debug/pprof/cmdline"); r.problem(t).Code != "not_found" {
		t.Errorf("cmdline: %s", r.body)
	}
	g := newFixture(t)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/vars"} {
		if r := g.get(t, p); r.status != 404 {
			t.Errorf("pprof off: %s: %d", p, r.status)
		}
	}
}

// TestHead checks that HEAD is answered wherever GET is, through a real
// HTTP server: the GET status and headers, no body.
func TestHead(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Pprof = true })
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	rq := rangeQuery(subFrom, subTo)
	for _, target := range []string{
		"/livez", "/healthz", "/readyz", "/metrics", "/openapi.json",
		"/v1/streams", "/v1/streams/pageviews", "/v1/streams/pageviews/keys",
		aggPath + "users?" + rq, aggPath + "urls/sketch?" + rq,
		"/v1/streams/nope", aggPath + "users?q=1", "/debug/pprof/",
	} {
		get, err := http.Get(srv.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		getBody, _ := io.ReadAll(get.Body)
		get.Body.Close()
		head, err := http.Head(srv.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		headBody, _ := io.ReadAll(head.Body)
		head.Body.Close()
		if head.StatusCode != get.StatusCode || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q, GET: %d %q", target, head.StatusCode, head.Header.Get("Content-Type"), get.StatusCode, get.Header.Get("Content-Type"))
		}
		if len(headBody) != 0 || len(getBody) == 0 {
			t.Errorf("HEAD %s: %d body bytes (GET %d)", target, len(headBody), len(getBody))
		}
		if head.Header.Get("X-Request-Id") == "" {
			t.Errorf("HEAD %s: no X-Request-Id", target)
		}
	}
	// HEAD is listed wherever GET is allowed.
	r := f.do(t, "PUT", "/v1/streams/pageviews", nil)
	if allow := r.header.Values("Allow"); !slices.Equal(allow, []string{"GET", "HEAD", "PATCH", "DELETE"}) {
		t.Errorf("Allow %q, want GET, HEAD, PATCH, DELETE", allow)
	}
	// HEAD of a POST-only or unknown route is still an error.
	if r := f.do(t, "HEAD", "/v2/nothing", nil); r.status != 404 {
		t.Errorf("HEAD unknown route: %d", r.status)
	}
	// The metrics label HEAD by route pattern.
	m := f.get(t, "/metrics")
	if !strings.Contains(string(m.body), `sketchd_http_requests_total{code="200",method="HEAD",route="/v1/streams/{stream}/aggregates/{aggregate}"} 1`) {
		t.Errorf("HEAD not in the metrics by route")
	}
}

// TestOpenAPICoversRoutes walks the router and the spec: every route must be
// described and every described operation must be routed.
//
// /debug/pprof (Config.Pprof) is walked but deliberately not described: it
// is net/http/pprof's debugging surface, off by default and not part of
// the API contract (its paths and formats are the Go runtime's, and its
// answers are not problem+json). docs/api.md lists it.
func TestOpenAPICoversRoutes(t *testing.T) {
	live := newLiveStack(t)
	f := newFixture(t, func(c *Config) { c.Pprof, c.Publisher = true, live.mgr })
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
	var routed, excluded []string
	err := chi.Walk(f.h.(*Handler).Handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasPrefix(route, "/debug/pprof/") {
			excluded = append(excluded, method+" "+route)
			return nil
		}
		if route != "/" {
			route = strings.TrimSuffix(route, "/")
		}
		routed = append(routed, strings.ToLower(method)+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(excluded) == 0 {
		t.Error("no /debug/pprof route walked: the exclusion is not exercised")
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

// TestOpenAPIProblemCodes: the spec's code enum is exactly the codes the
// API can answer.
func TestOpenAPIProblemCodes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	got := doc.Components.Schemas.Problem.Properties.Code.Enum
	slices.Sort(got)
	want := slices.Sorted(maps.Keys(problemCodes))
	if !slices.Equal(got, want) {
		t.Errorf("OpenAPI Problem.code enum %q, want the API's codes %q", got, want)
	}
}

func TestOpenAPIDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, openAPI) {
		t.Error("docs/openapi.json differs from internal/api/openapi.json; copy internal/api/openapi.json over it")
	}
}
