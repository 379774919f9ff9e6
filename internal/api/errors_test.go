package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

func TestErrors(t *testing.T) {
	f := newFixture(t)
	rq := rangeQuery(subFrom, subTo)
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		hdr        []string
		status     int
		code       string
		param      string
		limit      string
		errorField string // for invalid_stream_spec: a field listed in errors
	}{
		{"unknown stream", "GET", "/v1/streams/nope", "", nil, 404, "stream_not_found", "", "", ""},
		{"unknown stream query", "GET", "/v1/streams/nope/aggregates/users", "", nil, 404, "stream_not_found", "", "", ""},
		{"unknown stream delete", "DELETE", "/v1/streams/nope", "", nil, 404, "stream_not_found", "", "", ""},
		{"unknown stream keys", "GET", "/v1/streams/nope/keys", "", nil, 404, "stream_not_found", "", "", ""},
		{"unknown aggregate", "GET", aggPath + "nope?" + rq, "", nil, 404, "aggregate_not_found", "", "", ""},
		{"unknown aggregate sketch", "GET", aggPath + "nope/sketch", "", nil, 404, "aggregate_not_found", "", "", ""},
		{"unknown route", "GET", "/v2/nothing", "", nil, 404, "not_found", "", "", ""},
		{"unknown route under v1", "GET", "/v1/streams/pageviews/nothing", "", nil, 404, "not_found", "", "", ""},
		{"method not allowed", "PUT", "/v1/streams", "", nil, 405, "method_not_allowed", "", "", ""},
		{"unknown param", "GET", aggPath + "users?" + rq + "&form=1", "", nil, 400, "invalid_parameter", "form", "", ""},
		{"q on hll", "GET", aggPath + "users?" + rq + "&q=0.5", "", nil, 400, "invalid_parameter", "q", "", ""},
		{"top on tdigest", "GET", aggPath + "latency?" + rq + "&top=3", "", nil, 400, "invalid_parameter", "top", "", ""},
		{"n on cms", "GET", aggPath + "urls?" + rq + "&n=3", "", nil, 400, "invalid_parameter", "n", "", ""},
		{"item on reservoir", "GET", aggPath + "sample?" + rq + "&item=x", "", nil, 400, "invalid_parameter", "item", "", ""},
		{"bad from", "GET", aggPath + "users?from=yesterday", "", nil, 400, "invalid_parameter", "from", "", ""},
		{"to before from", "GET", aggPath + "users?" + rangeQuery(subTo, subFrom), "", nil, 400, "invalid_parameter", "to", "", ""},
		{"from twice", "GET", aggPath + "users?" + rq + "&from=1", "", nil, 400, "invalid_parameter", "from", "", ""},
		{"step overflowing days", "GET", aggPath + "users?" + rq + "&step=200000d", "", nil, 400, "invalid_parameter", "step", "", ""},
		{"window longer than max range", "GET", aggPath + "users?" + rq + "&step=1m&window=9000h", "", nil, 400, "invalid_parameter", "window", "", ""},
		{"bad step", "GET", aggPath + "users?" + rq + "&step=soon", "", nil, 400, "invalid_parameter", "step", "", ""},
		{"step not multiple of granularity", "GET", aggPath + "users?" + rq + "&step=90s", "", nil, 400, "invalid_parameter", "step", "", ""},
		{"window without step", "GET", aggPath + "users?" + rq + "&window=10m", "", nil, 400, "invalid_parameter", "window", "", ""},
		{"window not multiple of step", "GET", aggPath + "users?" + rq + "&step=10m&window=15m", "", nil, 400, "invalid_parameter", "window", "", ""},
		{"where not a dimension", "GET", aggPath + "users?" + rq + "&where=city=x", "", nil, 400, "invalid_parameter", "where", "", ""},
		{"where malformed", "GET", aggPath + "users?" + rq + "&where=country", "", nil, 400, "invalid_parameter", "where", "", ""},
		{"group_by not a dimension", "GET", aggPath + "users?" + rq + "&group_by=city", "", nil, 400, "invalid_parameter", "group_by", "", ""},
		{"q out of range", "GET", aggPath + "latency?" + rq + "&q=1.5", "", nil, 400, "invalid_parameter", "q", "", ""},
		{"q not a number", "GET", aggPath + "latency?" + rq + "&q=NaN", "", nil, 400, "invalid_parameter", "q", "", ""},
		{"top too big", "GET", aggPath + "urls?" + rq + "&top=1001", "", nil, 400, "invalid_parameter", "top", "", ""},
		{"n negative", "GET", aggPath + "sample?" + rq + "&n=-1", "", nil, 400, "invalid_parameter", "n", "", ""},
		{"group_by on sketch", "GET", aggPath + "users/sketch?" + rq + "&group_by=country", "", nil, 400, "invalid_parameter", "group_by", "", ""},
		{"step on sketch", "GET", aggPath + "users/sketch?" + rq + "&step=1m", "", nil, 400, "invalid_parameter", "step", "", ""},
		{"q on sketch", "GET", aggPath + "latency/sketch?" + rq + "&q=0.5", "", nil, 400, "invalid_parameter", "q", "", ""},
		{"keys bad limit", "GET", "/v1/streams/pageviews/keys?limit=0", "", nil, 400, "invalid_parameter", "limit", "", ""},
		{"keys unknown param", "GET", "/v1/streams/pageviews/keys?group_by=country", "", nil, 400, "invalid_parameter", "group_by", "", ""},
		{"get stream param", "GET", "/v1/streams/pageviews?verbose=1", "", nil, 400, "invalid_parameter", "verbose", "", ""},
		{"range too wide", "GET", aggPath + "users?from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "", nil, 422, "query_too_large", "", "max_range_seconds", ""},
		{"too many windows", "GET", aggPath + "users?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&step=1m", "", nil, 422, "query_too_large", "", "max_windows", ""},
		{"create exists", "POST", "/v1/streams", `{"name":"pageviews","subject":"a.b","aggregates":{"n":{"sketch":"hll","field":"x"}}}`, nil, 409, "stream_exists", "", "", ""},
		{"create invalid", "POST", "/v1/streams", `{"name":"bad name","subject":"","aggregates":{"u":{"sketch":"hll","field":"x","precision":30}}}`, nil, 400, "invalid_stream_spec", "", "", "aggregates.u.precision"},
		{"create unknown field", "POST", "/v1/streams", `{"name":"x","subjekt":"a"}`, nil, 400, "invalid_body", "", "", ""},
		{"create not JSON", "POST", "/v1/streams", `name: x`, nil, 400, "invalid_body", "", "", ""},
		{"create wrong media type", "POST", "/v1/streams", `{}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "", "", ""},
		{"create body too large", "POST", "/v1/streams", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, "body_too_large", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			} else {
				body = strings.NewReader("")
			}
			hdr := tt.hdr
			if tt.body != "" && hdr == nil {
				hdr = []string{"Content-Type", "application/json"}
			}
			r := f.do(t, tt.method, tt.target, body, hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			p := r.problem(t)
			if p.Code != tt.code || p.Status != tt.status || p.Type != problemTypeBase+tt.code || p.Title == "" {
				t.Errorf("problem %+v, want code %s", p, tt.code)
			}
			if p.Instance != strings.SplitN(tt.target, "?", 2)[0] {
				t.Errorf("instance %q", p.Instance)
			}
			if p.RequestID == "" || p.RequestID != r.header.Get("X-Request-Id") {
				t.Errorf("request_id %q, header %q", p.RequestID, r.header.Get("X-Request-Id"))
			}
			if p.Parameter != tt.param {
				t.Errorf("parameter %q, want %q (%s)", p.Parameter, tt.param, p.Detail)
			}
			if p.Limit != tt.limit || (tt.limit != "" && (p.Max == nil || p.Got == nil || *p.Got <= *p.Max)) {
				t.Errorf("limit %q max %v got %v, want %q", p.Limit, p.Max, p.Got, tt.limit)
			}
			if tt.errorField != "" {
				found := false
				for _, e := range p.Errors {
					found = found || e.Field == tt.errorField
				}
				if !found || len(p.Errors) < 3 {
					t.Errorf("errors %+v, want every field error incl. %s", p.Errors, tt.errorField)
				}
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// failingQuerier fails or blocks every call.
type failingQuerier struct {
	err   error
	block bool
}

func (q failingQuerier) Query(ctx context.Context, _ query.Target, _ query.Query) (*query.Result, error) {
	if q.block {
		<-ctx.Done()
		return nil, fmt.Errorf("scan: %w", ctx.Err())
	}
	return nil, q.err
}

func (q failingQuerier) Keys(ctx context.Context, _ query.Target, _, _ int64, _ map[string][]string, _ int) ([]map[string]string, bool, error) {
	if q.block {
		<-ctx.Done()
		return nil, false, ctx.Err()
	}
	if q.err == errPanic {
		panic("boom")
	}
	return nil, false, q.err
}

func (q failingQuerier) KeysFiltered(ctx context.Context, t query.Target, from, to int64, _ []query.Filter, limit int) ([]map[string]string, bool, error) {
	return q.Keys(ctx, t, from, to, nil, limit)
}

func (q failingQuerier) QueryMulti(ctx context.Context, t query.Target, qu query.Query, _ []string) ([]*query.Result, error) {
	res, err := q.Query(ctx, t, qu)
	return []*query.Result{res}, err
}

var errPanic = errors.New("panic please")

func TestDependencyErrors(t *testing.T) {
	tests := []struct {
		name    string
		querier Querier
		streams error
		target  string
		status  int
		code    string
	}{
		{"store unavailable", failingQuerier{err: fmt.Errorf("read: %w", sketchd.ErrUnavailable)}, nil, aggPath + "users", 503, "unavailable"},
		{"registry unavailable", nil, sketchd.ErrUnavailable, "/v1/streams", 503, "unavailable"},
		{"query memory budget full", failingQuerier{err: fmt.Errorf("query: %w", query.ErrBusy)}, nil, aggPath + "users", 503, "overloaded"},
		{"timeout honoured by querier", failingQuerier{block: true}, nil, aggPath + "users", 504, "timeout"},
		{"timeout on keys", failingQuerier{block: true}, nil, "/v1/streams/pageviews/keys", 504, "timeout"},
		{"internal", failingQuerier{err: errors.New("secret disk path /var/x corrupt")}, nil, aggPath + "users", 500, "internal"},
		{"panic", failingQuerier{err: errPanic}, nil, "/v1/streams/pageviews/keys", 500, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := newFixture(t, func(c *Config) {
				if tt.querier != nil {
					c.Querier = tt.querier
				}
				c.Limits.Timeout = 20 * time.Millisecond
				c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			})
			f.streams.err = tt.streams
			r := f.get(t, tt.target)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			p := r.problem(t)
			if p.Code != tt.code {
				t.Errorf("code %q, want %q", p.Code, tt.code)
			}
			if tt.code == codeOverloaded && r.header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q, want 1", r.header.Get("Retry-After"))
			}
			if strings.Contains(string(r.body), "secret") {
				t.Errorf("internal details leaked: %s", r.body)
			}
			if tt.status == 500 && !strings.Contains(logs.String(), p.RequestID) {
				t.Errorf("500 not logged with its request id: %s", logs.String())
			}
		})
	}
}

func TestProblemForMapping(t *testing.T) {
	// Every documented mapping, through wrapping as callers do it.
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("x: %w", sketchd.ErrNotFound), 404, codeStreamNotFound},
		{fmt.Errorf("x: %w", query.ErrUnknownAggregate), 404, codeAggregateNotFound},
		{fmt.Errorf("x: %w", &query.ParamError{Param: "p", Msg: "m"}), 400, codeInvalidParameter},
		{fmt.Errorf("x: %w", &query.LimitError{Limit: "max_keys", Max: 1, Got: 2}), 422, codeQueryTooLarge},
		{fmt.Errorf("x: %w", sketchd.ErrExists), 409, codeStreamExists},
		{errors.Join(&sketchd.FieldError{Field: "a", Msg: "b"}, &sketchd.FieldError{Field: "c", Msg: "d"}), 400, codeInvalidSpec},
		{fmt.Errorf("x: %w", sketchd.ErrUnavailable), 503, codeUnavailable},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 504, codeTimeout},
		{&http.MaxBytesError{Limit: 1}, 413, codeBodyTooLarge},
		// Corrupt data, from the store (without the API importing it) or
		// from a sketch blob.
		{fmt.Errorf("x: %w", &store.CorruptError{Key: []byte{1}, Reason: "checksum"}), 500, codeCorrupt},
		{fmt.Errorf("x: %w", sketchd.ErrCorrupt), 500, codeCorrupt},
		{fmt.Errorf("x: %w", sketch.ErrCorrupt), 500, codeCorrupt},
		{fmt.Errorf("x: %w", sketch.ErrVersion), 500, codeCorrupt},
		{errors.New("other"), 500, codeInternal},
	}
	for _, tt := range tests {
		p, internal := problemFor(tt.err)
		if p.Status != tt.status || p.Code != tt.code || internal != (tt.code == codeInternal || tt.code == codeCorrupt) {
			t.Errorf("%v: %d %s (internal %v), want %d %s", tt.err, p.Status, p.Code, internal, tt.status, tt.code)
		}
	}
	p, _ := problemFor(errors.Join(&sketchd.FieldError{Field: "a", Msg: "b"}, &sketchd.FieldError{Field: "c", Msg: "d"}))
	if len(p.Errors) != 2 {
		t.Errorf("errors %+v, want both field errors", p.Errors)
	}
}

func TestStreamsAdmin(t *testing.T) {
	f := newFixture(t)
	var list struct {
		Streams []streamJSON `json:"streams"`
	}
	f.getJSON(t, "/v1/streams", &list)
	if len(list.Streams) != 1 || list.Streams[0].Name != "pageviews" || list.Streams[0].Watermark == nil {
		t.Fatalf("list = %+v", list)
	}
	var one streamJSON
	f.getJSON(t, "/v1/streams/pageviews", &one)
	if one.Spec.Aggregates["urls"].TopK != 5 || one.Counters.OnTime != fixtureEvents || one.CommittedWatermark == nil {
		t.Errorf("get = %+v", one)
	}

	body := `{"name":"clicks","subject":"events.clicks","group_by":["page"],"aggregates":{"users":{"sketch":"hll","field":"user"}}}`
	r := f.do(t, "POST", "/v1/streams", strings.NewReader(body), "Content-Type", "application/json")
	if r.status != 201 || r.header.Get("Location") != "/v1/streams/clicks" {
		t.Fatalf("create: %d, Location %q: %s", r.status, r.header.Get("Location"), r.body)
	}
	var created streamJSON
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if created.Name != "clicks" || created.Watermark != nil || created.Spec.Granularity.Std() != time.Minute {
		t.Errorf("created = %+v (want defaults filled, watermark null)", created)
	}
	// A new stream without panes answers empty windows, watermark null.
	var res resT
	f.getJSON(t, "/v1/streams/clicks/aggregates/users", &res)
	if res.Watermark != nil || res.Groups[0].Windows[0].Events != 0 || res.Groups[0].Windows[0].Final {
		t.Errorf("new stream answer %+v", res)
	}
	if r := f.do(t, "DELETE", "/v1/streams/clicks", nil); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := f.get(t, "/v1/streams/clicks"); r.status != 404 {
		t.Errorf("after delete: %d", r.status)
	}
}

func TestBodyTooLargeUnknownLength(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Limits.MaxBodyBytes = 64 })
	// A reader of unknown length: the limit trips while reading.
	body := io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("x", 100)+`"}`))
	r := f.do(t, "POST", "/v1/streams", body, "Content-Type", "application/json")
	if r.status != 413 || r.problem(t).Code != "body_too_large" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

// TestUnknownStreamDetail: every route that names an unknown stream says
// so once, in the API's words, not in the store's (it read
// `stream "nope": stream "nope": store: not found`).
func TestUnknownStreamDetail(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, target, body string }{
		{"GET", "/v1/streams/nope", ""},
		{"GET", "/v1/streams/nope/aggregates/users", ""},
		{"GET", "/v1/streams/nope/keys", ""},
		{"GET", "/v1/streams/nope/query?aggregate=users", ""},
		{"DELETE", "/v1/streams/nope", ""},
		{"PATCH", "/v1/streams/nope", `{"retention":"48h"}`},
	} {
		r := f.do(t, c.method, c.target, strings.NewReader(c.body))
		var p problem
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("%s %s: %v: %s", c.method, c.target, err, r.body)
		}
		if r.status != 404 || p.Code != "stream_not_found" || p.Detail != `stream "nope" not found` {
			t.Errorf("%s %s: %d %s %q, want 404 stream_not_found %q", c.method, c.target, r.status, p.Code, p.Detail, `stream "nope" not found`)
		}
	}
}
