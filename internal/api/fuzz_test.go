package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fuzzEndpoints are the routes FuzzQuery aims at when its selector is odd
// (an even selector takes the fuzzed path as it is).
var fuzzEndpoints = []string{
	aggPath + "users", aggPath + "urls", aggPath + "latency", aggPath + "sample",
	aggPath + "users/sketch", aggPath + "latency/sketch",
	"/v1/streams/pageviews/keys", "/v1/streams/pageviews", "/v1/streams",
	"/v1/streams/pageviews/query",
}

// FuzzQuery drives the real router, over a real Badger store holding real
// panes, with fuzzed paths and query strings (GET and HEAD). Property:
// nothing panics, nothing answers 5xx, and every error is an
// application/problem+json 4xx whose status, code and type agree. The
// seeds are the hostile cases of TestHostileQueries small enough to mutate.
//
//	go test ./internal/api -run '^$' -fuzz FuzzQuery -fuzztime 60s
func FuzzQuery(f *testing.F) {
	for _, c := range hostileCases() {
		if len(c.target) > 4096 {
			continue // the big ones are in TestHostileQueries
		}
		path, query, _ := strings.Cut(c.target, "?")
		f.Add(uint8(0), path, query)
	}
	rq := rangeQuery(fullFrom, fullTo)
	for i, q := range []string{
		rq, "", rq + "&group_by=country&step=10m&window=30m", "where=country=de&where=device=mobile&q=0.5,0.99&cdf=10,100",
		"top=3&item=/p/1&item=/p/2", "n=5", "limit=2&where=country=fr", "from=1795600800.123456789&to=1795604400",
		"where=country!=de&where=device:in=mobile,desktop&where=country:not_in=us", "where=country=de,fr",
		"group_by=country&order_by=q0.99:asc&limit=2&rank=10,100&trim=0.05", "n=3&seed=42",
		"aggregate=users,latency,urls&q=0.99&top=2&group_by=device",
	} {
		f.Add(uint8(2*i+1), "", q)
	}
	fx := newStoreFixture(f)
	f.Fuzz(func(t *testing.T, sel uint8, path, query string) {
		if sel%2 == 1 {
			path = fuzzEndpoints[int(sel/2)%len(fuzzEndpoints)]
		}
		method := http.MethodGet
		if sel&0x80 != 0 {
			method = http.MethodHead
		}
		target := path
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		if query != "" {
			target += "?" + query
		}
		// What net/http's server would refuse never reaches the handler.
		if _, err := url.ParseRequestURI(target); err != nil || len(target) > MaxHeaderBytes || strings.ContainsAny(target, " \t\r\n") {
			t.Skip()
		}
		req := rawRequest(t, method, target)
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		checkAnswer(t, method+" "+target, rec)
	})
}

// checkAnswer is FuzzQuery's property for one response.
func checkAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	status, ct, body := rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
	if status >= 500 {
		t.Fatalf("%.500s: status %d: %.500s", what, status, body)
	}
	if status < 400 {
		if ct == "application/json" && !json.Valid(body) {
			t.Fatalf("%.500s: %d with invalid JSON: %.500s", what, status, body)
		}
		return
	}
	if ct != "application/problem+json" {
		t.Fatalf("%.500s: status %d with Content-Type %q: %.500s", what, status, ct, body)
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%.500s: problem does not decode: %v: %.500s", what, err, body)
	}
	pc, known := problemCodes[p.Code]
	if p.Status != status || !known || p.Title != pc.title || p.Status != pc.status ||
		p.Type != problemTypeBase+p.Code || p.RequestID == "" {
		t.Fatalf("%.500s: inconsistent problem for status %d: %+v", what, status, p)
	}
	if status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
		t.Fatalf("%.500s: 405 without Allow", what)
	}
	if p.Code == codeInvalidParameter && p.Parameter == "" {
		t.Fatalf("%.500s: invalid_parameter without the parameter: %+v", what, p)
	}
}
