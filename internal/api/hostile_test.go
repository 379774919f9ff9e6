package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repeatParam returns n copies of "name=value" joined by &.
func repeatParam(name, value string, n int) string {
	return strings.TrimSuffix(strings.Repeat(name+"="+value+"&", n), "&")
}

// commaList returns n copies of v joined by commas.
func commaList(v string, n int) string {
	return strings.TrimSuffix(strings.Repeat(v+",", n), ",")
}

// hostileCase is one hostile request and what it must get.
type hostileCase struct {
	name   string
	target string
	status int
	code   string // problem code; "" for 200
	param  string // invalid_parameter: the parameter named
	limit  string // query_too_large: the limit named
}

// hostileCases are absurd ranges, huge lists, overflowing durations, bad
// numbers, unknown and repeated parameters, bad UTF-8 and broken
// percent-encoding. They seed FuzzQuery too.
func hostileCases() []hostileCase {
	rq := rangeQuery(fullFrom, fullTo)
	users, latency, urls, sample := aggPath+"users?", aggPath+"latency?", aggPath+"urls?", aggPath+"sample?"
	return []hostileCase{
		// Absurd ranges.
		{"from year 1000", users + "from=1000-01-01T00:00:00Z", 400, "invalid_parameter", "from", ""},
		{"from year 0", users + "from=0000-01-01T00:00:00Z&to=0001-01-01T00:00:00Z", 400, "invalid_parameter", "to", ""},
		{"to year 9999", users + "from=2026-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", 400, "invalid_parameter", "to", ""},
		// 253402300799 (9999 in seconds) reads as milliseconds (1978): numbers of 1e11 and more are milliseconds.
		{"to year 9999 unix ms", users + "to=253402300799000", 400, "invalid_parameter", "to", ""},
		{"from far negative unix", users + "from=-99999999999", 400, "invalid_parameter", "from", ""},
		{"from min int64", users + "from=-9223372036854775808", 400, "invalid_parameter", "from", ""},
		{"from 1e30", users + "from=1e30", 400, "invalid_parameter", "from", ""},
		{"from 1e30 digits", users + "from=1" + strings.Repeat("0", 30), 400, "invalid_parameter", "from", ""},
		{"from 1e30 seconds fraction", users + "from=1" + strings.Repeat("0", 30) + ".5", 400, "invalid_parameter", "from", ""},
		{"from NaN", users + "from=NaN", 400, "invalid_parameter", "from", ""},
		{"from Inf", users + "from=-Inf", 400, "invalid_parameter", "from", ""},
		{"from after to", users + rangeQuery(fullTo, fullFrom), 400, "invalid_parameter", "to", ""},
		{"from equals to", users + rangeQuery(fullTo, fullTo), 400, "invalid_parameter", "to", ""},
		{"widest times", users + "from=1700-01-01T00:00:00Z&to=2249-12-31T00:00:00Z", 422, "query_too_large", "", "max_range_seconds"},
		{"unix zero to now", users + "from=-0", 422, "query_too_large", "", "max_range_seconds"},
		{"before 1970 is fine", users + "from=1969-12-31T23:00:00Z&to=1970-01-01T01:00:00Z", 200, "", "", ""},
		{"offset out of range", users + "from=2026-11-25T10:00:00%2B25:00", 400, "invalid_parameter", "from", ""},
		{"february 30", users + "from=2026-02-30T00:00:00Z", 400, "invalid_parameter", "from", ""},
		{"fraction garbage", users + "from=1795600800.5x", 400, "invalid_parameter", "from", ""},
		{"empty from", users + "from=", 400, "invalid_parameter", "from", ""},
		// Huge where lists and values.
		{"where 1001 values", users + repeatParam("where", "country=x", 1001), 400, "invalid_parameter", "where", ""},
		{"where 3000 values", users + repeatParam("where", "country=x", 3000), 422, "query_too_large", "", "max_parameters"},
		{"where 9000 values (under net/url's 10,000)", users + repeatParam("where", "country=x", 9000), 422, "query_too_large", "", "max_parameters"},
		{"where a million values", users + repeatParam("where", "c=d", 1_000_000), 422, "query_too_large", "", "max_parameters"},
		{"where one huge value", users + "where=country=" + strings.Repeat("x", 1<<20), 200, "", "", ""},
		{"where without =", users + "where=country", 400, "invalid_parameter", "where", ""},
		{"where empty dimension", users + "where==de", 400, "invalid_parameter", "where", ""},
		{"where unknown dimension", users + "where=city=x", 400, "invalid_parameter", "where", ""},
		{"where empty", users + "where=", 400, "invalid_parameter", "where", ""},
		// Bad and overflowing durations.
		{"step 200000d", users + rq + "&step=200000d", 400, "invalid_parameter", "step", ""},
		{"step max int64 days", users + rq + "&step=9223372036854775807d", 400, "invalid_parameter", "step", ""},
		{"step negative", users + rq + "&step=-5m", 400, "invalid_parameter", "step", ""},
		{"step negative days", users + rq + "&step=-1d", 400, "invalid_parameter", "step", ""},
		{"step zero", users + rq + "&step=0", 400, "invalid_parameter", "step", ""},
		{"step 0s", users + rq + "&step=0s", 400, "invalid_parameter", "step", ""},
		{"step 1ns", users + rq + "&step=1ns", 400, "invalid_parameter", "step", ""},
		{"step overflowing hours", users + rq + "&step=9999999999h", 400, "invalid_parameter", "step", ""},
		{"step 1e30s", users + rq + "&step=1e30s", 400, "invalid_parameter", "step", ""},
		{"step NaN", users + rq + "&step=NaNs", 400, "invalid_parameter", "step", ""},
		{"step twice", users + rq + "&step=1m&step=5m", 400, "invalid_parameter", "step", ""},
		{"window zero", users + rq + "&step=1m&window=0", 400, "invalid_parameter", "window", ""},
		{"window negative", users + rq + "&step=1m&window=-1m", 400, "invalid_parameter", "window", ""},
		{"window overflowing", users + rq + "&step=1m&window=9999999999h", 400, "invalid_parameter", "window", ""},
		{"window 200000d", users + rq + "&step=1m&window=200000d", 400, "invalid_parameter", "window", ""},
		{"step 1m over a year", users + "from=2026-01-01T00:00:00Z&to=2026-11-25T00:00:00Z&step=1m", 422, "query_too_large", "", "max_windows"},
		{"sliding window of 30 days", users + rq + "&step=1h&window=720h", 200, "", "", ""},
		{"sliding 30-day windows every hour for a year", users + "from=2026-11-25T10:00:00Z&to=2027-11-25T12:00:00Z&step=1h&window=720h", 422, "query_too_large", "", "max_sliding_merges"},
		{"sliding year-wide windows every minute", users + rq + "&step=1m&window=8784h", 422, "query_too_large", "", "max_sliding_merges"},
		{"sliding hourly windows every 5m for a day", users + "from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z&step=5m&window=1h", 200, "", "", ""},
		// Numbers.
		{"q negative", latency + rq + "&q=-0.5", 400, "invalid_parameter", "q", ""},
		{"q NaN", latency + rq + "&q=NaN", 400, "invalid_parameter", "q", ""},
		{"q Inf", latency + rq + "&q=Inf", 400, "invalid_parameter", "q", ""},
		{"q -Inf", latency + rq + "&q=-Inf", 400, "invalid_parameter", "q", ""},
		{"q 1e309", latency + rq + "&q=1e309", 400, "invalid_parameter", "q", ""},
		{"q above 1", latency + rq + "&q=1.0000001", 400, "invalid_parameter", "q", ""},
		{"q empty element", latency + rq + "&q=0.5,,0.9", 400, "invalid_parameter", "q", ""},
		{"q 101 values", latency + rq + "&q=" + commaList("0.5", 101), 400, "invalid_parameter", "q", ""},
		{"q half a million values", latency + rq + "&q=" + commaList("1", 500_000), 400, "invalid_parameter", "q", ""},
		{"q 100 values", latency + rq + "&q=" + commaList("0.25", 100), 200, "", "", ""},
		{"q hex float", latency + rq + "&q=0x1p-1", 200, "", "", ""},
		{"cdf NaN", latency + rq + "&cdf=NaN", 400, "invalid_parameter", "cdf", ""},
		{"cdf 1e400", latency + rq + "&cdf=1e400", 400, "invalid_parameter", "cdf", ""},
		{"cdf huge finite", latency + rq + "&cdf=-1.7e308,1.7e308", 200, "", "", ""},
		{"cdf 101 values", latency + rq + "&" + repeatParam("cdf", "1", 101), 400, "invalid_parameter", "cdf", ""},
		{"n negative", sample + rq + "&n=-1", 400, "invalid_parameter", "n", ""},
		{"n NaN", sample + rq + "&n=NaN", 400, "invalid_parameter", "n", ""},
		{"n overflowing", sample + rq + "&n=99999999999999999999", 400, "invalid_parameter", "n", ""},
		{"n float", sample + rq + "&n=1e3", 400, "invalid_parameter", "n", ""},
		{"n above max", sample + rq + "&n=10001", 400, "invalid_parameter", "n", ""},
		{"top negative", urls + rq + "&top=-1", 400, "invalid_parameter", "top", ""},
		{"top above max", urls + rq + "&top=1001", 400, "invalid_parameter", "top", ""},
		{"top Inf", urls + rq + "&top=Inf", 400, "invalid_parameter", "top", ""},
		{"items 1001", urls + rq + "&" + repeatParam("item", "/x", 1001), 400, "invalid_parameter", "item", ""},
		{"items 1000", urls + rq + "&" + repeatParam("item", "/x", 1000), 200, "", "", ""},
		{"item one huge value", urls + rq + "&item=" + strings.Repeat("y", 1<<20), 200, "", "", ""},
		// Unknown and repeated parameters.
		{"unknown", users + rq + "&foo=1", 400, "invalid_parameter", "foo", ""},
		{"names are case-sensitive", users + "FROM=1", 400, "invalid_parameter", "FROM", ""},
		{"name without value", users + "verbose", 400, "invalid_parameter", "verbose", ""},
		{"from twice", users + rq + "&from=1", 400, "invalid_parameter", "from", ""},
		{"group_by twice", users + rq + "&group_by=country,country", 400, "invalid_parameter", "group_by", ""},
		{"group_by more than the dimensions", users + rq + "&group_by=country,device,country", 400, "invalid_parameter", "group_by", ""},
		{"group_by half a million", users + rq + "&group_by=" + commaList("country", 500_000), 400, "invalid_parameter", "group_by", ""},
		{"empty pairs are skipped", users + rq + "&&&&", 200, "", "", ""},
		// Bad UTF-8 and percent-encoding garbage.
		{"where value not UTF-8", users + "where=country=%FF", 400, "invalid_parameter", "where", ""},
		{"item overlong UTF-8", urls + "item=%C0%AF", 400, "invalid_parameter", "item", ""},
		{"name not UTF-8", users + "%FF%FE=1", 400, "invalid_parameter", "%FF%FE", ""},
		{"value bad escape", users + "where=%ZZ", 400, "invalid_parameter", "where", ""},
		{"value truncated escape", users + "from=%2", 400, "invalid_parameter", "from", ""},
		{"name bad escape", users + "%=1", 400, "invalid_parameter", "%", ""},
		{"parameter without a name", users + "=1", 400, "invalid_parameter", "=1", ""},
		{"semicolon separator", users + "from=1;to=2", 400, "invalid_parameter", "from", ""},
		{"escaped semicolon is data", users + rq + "&where=country=a%3Bb", 200, "", "", ""},
		{"NUL in value", users + "where=country=%00", 200, "", "", ""},
		// Paths.
		{"stream name not UTF-8", "/v1/streams/%FF/aggregates/users", 404, "stream_not_found", "", ""},
		{"aggregate NUL", aggPath + "%00", 404, "aggregate_not_found", "", ""},
		{"encoded slash", "/v1/streams/page%2Fviews/aggregates/users", 404, "stream_not_found", "", ""},
		{"extra segment", aggPath + "users/sketch/more", 404, "not_found", "", ""},
		{"dot segments", "/v1/streams/../streams/pageviews", 404, "not_found", "", ""},
		{"long path", "/v1/streams/" + strings.Repeat("a", 1<<16), 404, "stream_not_found", "", ""},
		// Keys and sketch endpoints.
		{"keys limit zero", "/v1/streams/pageviews/keys?limit=0", 400, "invalid_parameter", "limit", ""},
		{"keys limit overflow", "/v1/streams/pageviews/keys?limit=99999999999999999999", 400, "invalid_parameter", "limit", ""},
		{"keys limit above max", "/v1/streams/pageviews/keys?limit=10001", 400, "invalid_parameter", "limit", ""},
		{"keys 9000 where", "/v1/streams/pageviews/keys?" + repeatParam("where", "country=x", 9000), 422, "query_too_large", "", "max_parameters"},
		{"sketch step", aggPath + "users/sketch?" + rq + "&step=200000d", 400, "invalid_parameter", "step", ""},
		{"sketch bad UTF-8", aggPath + "users/sketch?where=country=%FF", 400, "invalid_parameter", "where", ""},
		{"list with garbage", "/v1/streams?%ZZ", 400, "invalid_parameter", "%ZZ", ""},
		{"stream with 9000 params", "/v1/streams/pageviews?" + repeatParam("a", "b", 9000), 422, "query_too_large", "", "max_parameters"},
	}
}

// TestHostileQueries sends each hostile case through the real router over
// a real Badger store and checks the status, and for errors the problem:
// application/problem+json with the right code and the parameter or limit
// it names.
func TestHostileQueries(t *testing.T) {
	f := newStoreFixture(t)
	for _, tt := range hostileCases() {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, rawRequest(t, http.MethodGet, tt.target))
			r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tt.status, r.body)
			}
			if tt.status == 200 {
				if !json.Valid(r.body) {
					t.Fatalf("200 with a body that is not JSON: %.300s", r.body)
				}
				return
			}
			p := r.problem(t)
			if p.Code != tt.code || p.Status != tt.status || p.Type != problemTypeBase+tt.code {
				t.Errorf("problem %+v, want code %s", p, tt.code)
			}
			if p.Parameter != tt.param {
				t.Errorf("parameter %q, want %q (%s)", p.Parameter, tt.param, p.Detail)
			}
			if p.Limit != tt.limit || (tt.limit != "" && (p.Max == nil || p.Got == nil || *p.Got <= *p.Max)) {
				t.Errorf("limit %q max %v got %v, want %q", p.Limit, p.Max, p.Got, tt.limit)
			}
			if len(r.body) > 4096 {
				t.Errorf("problem of %d bytes: the request is echoed", len(r.body))
			}
		})
	}
}

// rawRequest builds a request for target as net/http's server would, but
// without validating a multi-megabyte query string byte by byte (the
// server does not either: it keeps RawQuery as sent). The path is parsed.
func rawRequest(tb testing.TB, method, target string) *http.Request {
	tb.Helper()
	path, query, _ := strings.Cut(target, "?")
	u, err := url.ParseRequestURI(path)
	if err != nil {
		tb.Fatalf("path %.100q: %v", path, err)
	}
	u.RawQuery = query
	return (&http.Request{
		Method: method, URL: u, RequestURI: target, Host: "sketchd.test",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody,
	}).WithContext(tb.Context())
}

// bytesPerRequest serves req on h runs times and returns the bytes
// allocated per request (runtime.MemStats.TotalAlloc, which only grows).
func bytesPerRequest(h http.Handler, req *http.Request, runs int) (uint64, int) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req) // warm up: lazy initialisation is not per request
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs), rec.Code
}

// TestHostileQueriesBounded checks that the worst cases are refused before
// per-value work: the bytes a request allocates stay far below the size of
// its own query string. (Decoding the query first would allocate a string
// per value, and a slice of them: megabytes.)
func TestHostileQueriesBounded(t *testing.T) {
	f := newFixture(t) // in memory: no Badger goroutines allocating meanwhile
	rq := rangeQuery(fullFrom, fullTo)
	const maxBytes = 128 << 10
	tests := []struct {
		name   string
		target string
		status int
	}{
		{"where a million values", aggPath + "users?" + repeatParam("where", "country=x", 1_000_000), 422},
		{"where 9000 values", aggPath + "users?" + repeatParam("where", "country=x", 9000), 422},
		{"q half a million values", aggPath + "latency?" + rq + "&q=" + commaList("0.5", 500_000), 400},
		{"cdf half a million values", aggPath + "latency?" + rq + "&cdf=" + commaList("1", 500_000), 400},
		{"group_by half a million values", aggPath + "users?" + rq + "&group_by=" + commaList("country", 500_000), 400},
		{"keys a million where values", "/v1/streams/pageviews/keys?" + repeatParam("where", "a=b", 1_000_000), 422},
		{"list a million parameters", "/v1/streams?" + repeatParam("a", "b", 1_000_000), 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := rawRequest(t, http.MethodGet, tt.target)
			got, status := bytesPerRequest(f.h, req, 3)
			t.Logf("query of %d bytes: %d bytes allocated per request, status %d", len(req.URL.RawQuery), got, status)
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			if got > maxBytes {
				t.Errorf("%d bytes allocated for a refused request (query of %d bytes); want at most %d", got, len(req.URL.RawQuery), maxBytes)
			}
		})
	}
}

// TestServerURLLimit runs the handler behind api.NewServer on a loopback
// listener: a request line longer than MaxHeaderBytes is refused by
// net/http (431) before the handler runs, and one just under it reaches
// the handler and gets a problem.
func TestServerURLLimit(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln.Addr().String(), f.h)
	if srv.MaxHeaderBytes != MaxHeaderBytes {
		t.Fatalf("MaxHeaderBytes %d, want %d", srv.MaxHeaderBytes, MaxHeaderBytes)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	send := func(target string) (int, string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() { _, _ = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target) }()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	tooLong := aggPath + "users?where=country=" + strings.Repeat("x", MaxHeaderBytes+8192)
	if status, _ := send(tooLong); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("request line over MaxHeaderBytes: %d, want 431", status)
	}
	n := (MaxHeaderBytes - 4096) / len("where=country=x&")
	under := aggPath + "users?" + repeatParam("where", "country=x", n)
	if status, ct := send(under); status != 422 || ct != "application/problem+json" {
		t.Errorf("%d where values under MaxHeaderBytes: %d %s, want 422 application/problem+json", n, status, ct)
	}
	if status, _ := send(aggPath + "users?" + url.Values{"where": {"country=de"}}.Encode()); status != 200 {
		t.Errorf("a plain query: %d", status)
	}
}

// A range before 1970 is answered over that range: its from, to and
// resolution name it (the scan started at 1970, the first pane time that
// was not taken for "no floor", so the answer's from was after its to).
func TestQueryBefore1970(t *testing.T) {
	f := newStoreFixture(t)
	r := f.get(t, aggPath+"users?from=1969-12-31T23:00:00Z&to=1969-12-31T23:30:00Z&step=10m")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %.300s", r.status, r.body)
	}
	var ans struct {
		From, To   string
		Resolution []struct{ From, To string }
		Groups     []struct{ Windows []struct{ Start string } }
	}
	if err := json.Unmarshal(r.body, &ans); err != nil {
		t.Fatal(err)
	}
	if ans.From != "1969-12-31T23:00:00Z" || ans.To != "1969-12-31T23:30:00Z" {
		t.Errorf("from %s to %s, want the range asked", ans.From, ans.To)
	}
	for _, s := range ans.Resolution {
		if s.From > s.To || s.From < ans.From || s.To > ans.To {
			t.Errorf("resolution %s..%s outside %s..%s", s.From, s.To, ans.From, ans.To)
		}
	}
	if len(ans.Groups) != 1 || len(ans.Groups[0].Windows) != 3 || ans.Groups[0].Windows[0].Start != "1969-12-31T23:00:00Z" {
		t.Errorf("groups %+v: want one of 3 windows from 23:00", ans.Groups)
	}
}
