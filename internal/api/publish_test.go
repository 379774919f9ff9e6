package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/ingest"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// liveStack is the whole service in process: an embedded nats-server with
// JetStream on a temp dir, a real Badger store, a real ingest.Manager (the
// API's Streams and Publisher) and a real querier.
type liveStack struct {
	mgr *ingest.Manager
	db  *store.DB
}

const (
	liveAdmin = "live-admin-token"
	liveRead  = "live-read-token"
)

// liveStreams: "js" on JetStream, "core" on core NATS, "wild" on a wildcard
// subject; times in unix ms, keyed by country.
func liveStreams(tb testing.TB) []sketchd.Stream {
	tb.Helper()
	var out []sketchd.Stream
	for _, s := range []struct {
		name, subject string
		js            bool
	}{{"js", "live.js", true}, {"core", "live.core", false}, {"wild", "live.wild.*", true}} {
		spec := sketchd.DefaultStream()
		spec.Name, spec.Subject, spec.JetStream = s.name, s.subject, s.js
		spec.Time = sketchd.TimeSpec{Field: "ts", Format: sketchd.TimeUnixMS}
		spec.GroupBy = []string{"country"}
		spec.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "user"}}
		spec.Normalize()
		if err := spec.Validate(); err != nil {
			tb.Fatal(err)
		}
		out = append(out, spec)
	}
	return out
}

func newLiveStack(tb testing.TB) *liveStack {
	tb.Helper()
	ns, err := ingest.StartServer(ingest.ServerOptions{Port: -1, StoreDir: tb.TempDir()}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	db, err := store.Open(tb.TempDir(), nil, nil, store.DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	opts := ingest.DefaultOptions()
	opts.FlushInterval = 50 * time.Millisecond
	mgr, err := ingest.NewManager(nc, nil, db, nil, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := mgr.Start(tb.Context(), liveStreams(tb)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = mgr.Stop(context.Background()) })
	if err := mgr.Ready(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return &liveStack{mgr: mgr, db: db}
}

// fixture serves the API over the live stack.
func (l *liveStack) fixture(tb testing.TB, opts ...fixtureOpt) *fixture {
	tb.Helper()
	cfg := Config{Streams: l.mgr, Querier: newQuerier(tb, l.db, query.Options{}), Publisher: l.mgr,
		AdminToken: liveAdmin, ReadToken: liveRead, Limits: Limits{MaxBodyBytes: 4096}}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{h: h}
}

func liveEvent(ts time.Time, country, user string) string {
	return fmt.Sprintf(`{"ts": %d, "country": %q, "user": %q}`, ts.UnixMilli(), country, user)
}

// TestPublishEvents publishes through POST /v1/streams/{stream}/events,
// over the real router, into a real embedded NATS, and reads the events
// back through the query API; bad input is refused before anything is
// published.
func TestPublishEvents(t *testing.T) {
	f := newLiveStack(t).fixture(t)
	admin := []string{"Authorization", "Bearer " + liveAdmin}
	read := []string{"Authorization", "Bearer " + liveRead}
	base := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Minute)
	rng := rangeQuery(base, base.Add(10*time.Minute))
	post := func(t *testing.T, target, body string, hdr []string) response {
		t.Helper()
		return f.do(t, http.MethodPost, target, strings.NewReader(body), hdr...)
	}
	published := func(t *testing.T, r response) publishJSON {
		t.Helper()
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", r.status, r.body)
		}
		var p publishJSON
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// answered waits until the stream's users aggregate counts events.
	answered := func(t *testing.T, stream string, events uint64, distinct float64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var res struct {
				Groups []struct {
					Windows []struct {
						Events   uint64
						Distinct struct{ Estimate float64 }
					}
				}
			}
			r := f.get(t, "/v1/streams/"+stream+"/aggregates/users?"+rng, read...)
			if r.status == http.StatusOK && json.Unmarshal(r.body, &res) == nil && len(res.Groups) == 1 {
				w := res.Groups[0].Windows[0]
				if w.Events == events && w.Distinct.Estimate == distinct {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %d events, %v distinct users; last answer %d: %s", stream, events, distinct, r.status, r.body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	ndjson := liveEvent(base, "DE", "u1") + "\n" + liveEvent(base.Add(time.Second), "FR", "u2") + "\r\n\n" + liveEvent(base.Add(2*time.Second), "DE", "u1") + "\n"
	p := published(t, post(t, "/v1/streams/js/events", ndjson, admin))
	if p.Events != 3 || !p.JetStream || p.Sequence != 1 || p.Subject != "live.js" {
		t.Errorf("JetStream publish answered %+v, want 3 events stored at sequence 1 on live.js", p)
	}
	answered(t, "js", 3, 2)

	p = published(t, post(t, "/v1/streams/core/events", liveEvent(base, "DE", "u9"), admin))
	if p.Events != 1 || p.JetStream || p.Sequence != 0 {
		t.Errorf("core publish answered %+v", p)
	}
	answered(t, "core", 1, 1)

	// One pretty-printed event is one event.
	pretty := "{\n  \"ts\": " + fmt.Sprint(base.UnixMilli()) + ",\n  \"country\": \"FR\",\n  \"user\": \"u3\"\n}\n"
	if p = published(t, post(t, "/v1/streams/js/events", pretty, admin)); p.Events != 1 || p.Sequence != 2 {
		t.Errorf("pretty event answered %+v, want 1 event at sequence 2", p)
	}
	answered(t, "js", 4, 3)

	refused := []struct {
		name, target, body string
		hdr                []string
		status             int
		code, detail       string
	}{
		{"no token", "/v1/streams/js/events", ndjson, nil, 401, codeUnauthorized, "Authorization: Bearer <token>"},
		{"read token", "/v1/streams/js/events", ndjson, read, 403, codeForbidden, "admin token"},
		{"unknown stream", "/v1/streams/nope/events", ndjson, admin, 404, codeStreamNotFound, "nope"},
		{"empty", "/v1/streams/js/events", " \n\n", admin, 400, codeInvalidBody, "no events"},
		{"truncated line", "/v1/streams/js/events", liveEvent(base, "DE", "u1") + "\n" + `{"ts": 1, "coun`, admin, 400, codeInvalidBody, "event 2: bad_json"},
		{"no time", "/v1/streams/js/events", `{"country": "DE", "user": "u1"}`, admin, 400, codeInvalidBody, "event 1: missing_time"},
		{"not an object", "/v1/streams/js/events", `[1, 2]`, admin, 400, codeInvalidBody, "not_object"},
		{"too large", "/v1/streams/js/events", strings.Repeat(liveEvent(base, "DE", "u1")+"\n", 100), admin, 413, codeBodyTooLarge, "4096"},
		{"too large, no length", "/v1/streams/js/events", "chunked:" + strings.Repeat(liveEvent(base, "DE", "u1")+"\n", 100), admin, 413, codeBodyTooLarge, "4096"},
		{"unknown parameter", "/v1/streams/js/events?subjct=live.js", ndjson, admin, 400, codeInvalidParameter, "unknown"},
		{"wildcard without subject", "/v1/streams/wild/events", ndjson, admin, 400, codeInvalidParameter, "live.wild.*"},
		{"subject not read", "/v1/streams/wild/events?subject=live.other.a", ndjson, admin, 400, codeInvalidParameter, "not read"},
		{"subject with wildcard", "/v1/streams/wild/events?subject=live.wild.*", ndjson, admin, 400, codeInvalidParameter, "not a subject to publish to"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if body, ok := strings.CutPrefix(tt.body, "chunked:"); ok {
				// A reader of unknown length: read until the limit trips.
				r = f.do(t, http.MethodPost, tt.target, io.MultiReader(strings.NewReader(body)), tt.hdr...)
			} else {
				r = post(t, tt.target, tt.body, tt.hdr)
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if pr := r.problem(t); pr.Code != tt.code || !strings.Contains(pr.Detail, tt.detail) {
				t.Errorf("problem %s: %q, want %s naming %q", pr.Code, pr.Detail, tt.code, tt.detail)
			}
		})
	}
	// Nothing refused was published: the next message is sequence 3, and
	// no event was counted invalid.
	if p = published(t, post(t, "/v1/streams/js/events", liveEvent(base, "DE", "u4"), admin)); p.Sequence != 3 {
		t.Errorf("after the refusals the next message is sequence %d, want 3", p.Sequence)
	}
	answered(t, "js", 5, 4)
	var st struct{ Counters sketchd.Counters }
	if r := f.get(t, "/v1/streams/js", read...); r.status != http.StatusOK || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("GET /v1/streams/js: %d %s", r.status, r.body)
	}
	if len(st.Counters.Invalid) != 0 {
		t.Errorf("invalid events were published: %v", st.Counters.Invalid)
	}

	// A wildcard stream takes a subject it reads.
	if p = published(t, post(t, "/v1/streams/wild/events?subject=live.wild.a", liveEvent(base, "DE", "u5"), admin)); p.Subject != "live.wild.a" {
		t.Errorf("wildcard publish answered %+v", p)
	}
	answered(t, "wild", 1, 1)

	m := f.get(t, "/metrics")
	for _, want := range []string{
		`sketchd_http_ingest_events_total{stream="js"} 5`,
		`sketchd_http_ingest_events_total{stream="core"} 1`,
		`sketchd_http_ingest_events_total{stream="wild"} 1`,
		`sketchd_http_ingest_requests_total{result="published"} 5`,
		`sketchd_http_ingest_requests_total{result="invalid"} 9`, // the 400s and the 404
		`sketchd_http_ingest_requests_total{result="too_large"} 1`,
	} {
		if !strings.Contains(string(m.body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
