package emit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/ingest"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("SKETCHD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// base is a whole minute yesterday: event times within any retention.
var base = time.Now().UTC().Truncate(24 * time.Hour).Add(-14 * time.Hour)

const (
	gran     = 10 * time.Second
	lateness = 10 * time.Second
)

// spec is a JetStream stream of 10 s panes, 10 s of allowed lateness, the
// four classic kinds, and one emit target on out.<name> (close trigger).
func spec(name string) sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name, s.Subject = name, "events."+name
	s.Time = sketchd.TimeSpec{Field: "ts", Format: sketchd.TimeUnixMS}
	s.GroupBy = []string{"country"}
	s.Granularity = sketchd.Duration(gran)
	s.MaxOutOfOrderness = 0
	s.AllowedLateness = sketchd.Duration(lateness)
	s.IdleTimeout = 0
	s.MaxFuture = sketchd.Duration(100 * 365 * 24 * time.Hour)
	s.Retention = sketchd.Duration(100 * 365 * 24 * time.Hour)
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url", TopK: 5},
		"latency": {Sketch: sketchd.KindTDigest, Field: "ms"},
		"sample":  {Sketch: sketchd.KindReservoir, Size: 4},
	}
	s.Emit = []sketchd.Emit{{Subject: "out." + name, Params: map[string]string{"q": "0.5,0.99", "top": "3", "n": "2"}}}
	s.Normalize()
	return s
}

type event struct {
	TS      int64   `json:"ts"`
	Country string  `json:"country"`
	User    string  `json:"user"`
	URL     string  `json:"url"`
	MS      float64 `json:"ms"`
}

// rig is a real nats-server with JetStream, Badger, the ingest manager,
// the querier, the API router, and the emit service.
type rig struct {
	t       *testing.T
	nc      *nats.Conn
	js      jetstream.JetStream
	db      *store.DB
	mgr     *ingest.Manager
	q       *query.Querier
	svc     *Service
	stopSvc func()
	h       http.Handler
	rng     *rand.Rand
	dupWin  time.Duration // the target streams' duplicate window; 0: the default
}

// newQuerier returns a querier over r that tb closes when it ends: Close
// stops the worker of the ahead jobs a question may have started.
func newQuerier(tb testing.TB, r query.PaneReader, opts query.Options) *query.Querier {
	tb.Helper()
	q := query.New(r, opts)
	tb.Cleanup(q.Close)
	return q
}

func newRig(t *testing.T, specs ...sketchd.Stream) *rig {
	ns, err := ingest.StartServer(ingest.ServerOptions{Port: -1, StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, _, err := ingest.Connect(ingest.ConnOptions{URL: ns.ClientURL()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.TempDir(), testLogger(t), nil, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	mgr, err := ingest.NewManager(nc, nil, db, testLogger(t), ingest.Options{FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(t.Context(), specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mgr.Stop(context.Background()) })
	q := newQuerier(t, db, query.Options{})
	r := &rig{t: t, nc: nc, js: js, db: db, mgr: mgr, q: q, rng: rand.New(rand.NewPCG(19, 3))}
	r.svc, r.stopSvc = r.startService()
	h, err := api.New(api.Config{Streams: r.svc.Streams(mgr), Querier: q})
	if err != nil {
		t.Fatal(err)
	}
	r.h = h
	return r
}

// startService runs an emit service until the test ends; stop stops it
// earlier.
func (r *rig) startService() (svc *Service, stop func()) {
	svc = New(r.mgr, r.q, r.db, api.NewEmitRenderer(api.Limits{}), func() *nats.Conn { return r.nc }, testLogger(r.t), Options{Interval: 50 * time.Millisecond, DuplicateWindow: r.dupWin})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	stop = func() { cancel(); <-done }
	r.t.Cleanup(stop)
	return svc, stop
}

// publish publishes events at the given offsets (ms from base) to stream.
func (r *rig) publish(stream string, offsets ...int64) {
	r.t.Helper()
	for _, off := range offsets {
		e := event{TS: base.UnixMilli() + off, Country: []string{"DE", "FR", "US"}[r.rng.IntN(3)],
			User: fmt.Sprintf("u%d", r.rng.IntN(300)), URL: fmt.Sprintf("/p/%d", r.rng.IntN(20)), MS: r.rng.ExpFloat64() * 100}
		b, _ := json.Marshal(e)
		if _, err := r.js.Publish(r.t.Context(), "events."+stream, b); err != nil {
			r.t.Fatal(err)
		}
	}
}

// waitEmit waits until the stream's first target has published up to
// closedTo and finalTo (offsets from base).
func (r *rig) waitEmit(stream string, closedTo, finalTo time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := r.svc.Status(stream)
		if len(st) > 0 && st[0].ClosedTo >= base.Add(closedTo).UnixNano() && st[0].FinalTo >= base.Add(finalTo).UnixNano() {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("emit status %+v: want closed_to ≥ base+%s, final_to ≥ base+%s", st, closedTo, finalTo)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMessages waits until the messages on subject satisfy cond.
func (r *rig) waitMessages(subject, what string, cond func([]message) bool) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(r.read(subject)) {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// message is an emitted message as read from the target stream.
type message struct {
	id   string
	seq  uint64
	body map[string]any
}

func (m message) str(k string) string { s, _ := m.body[k].(string); return s }
func (m message) flag(k string) bool  { b, _ := m.body[k].(bool); return b }
func (m message) events() float64     { f, _ := m.body["events"].(float64); return f }
func (m message) group() string {
	k, _ := m.body["key"].(map[string]any)
	s, _ := k["country"].(string)
	return s
}

// read returns every message of the JetStream stream capturing subject.
func (r *rig) read(subject string) []message {
	r.t.Helper()
	ctx := r.t.Context()
	name, err := r.js.StreamNameBySubject(ctx, subject)
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := r.js.Stream(ctx, name)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []message
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Data, &body); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, message{id: m.Header.Get(jetstream.MsgIDHeader), seq: seq, body: body})
	}
	return out
}

// apiWindow returns the window the query API answers for the message's
// aggregate, group and window, with the target's parameters.
func (r *rig) apiWindow(stream string, m message, params map[string]string) map[string]any {
	r.t.Helper()
	v := url.Values{"from": {m.str("start")}, "to": {m.str("end")}, "group_by": {"country"}, "where": {"country=" + m.group()}}
	for k, p := range params {
		if slices.Contains(kindParams[m.str("kind")], k) {
			v.Set(k, p)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/streams/"+stream+"/aggregates/"+m.str("aggregate")+"?"+v.Encode(), nil)
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		r.t.Fatalf("%s: %d %s", req.URL, rec.Code, rec.Body)
	}
	var res struct {
		Groups []struct {
			Windows []map[string]any `json:"windows"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		r.t.Fatal(err)
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Windows) != 1 {
		r.t.Fatalf("%s: want one group and window, got %s", req.URL, rec.Body)
	}
	return res.Groups[0].Windows[0]
}

var kindParams = map[string][]string{"tdigest": {"q"}, "cms": {"top"}, "reservoir": {"n"}}

// windowPart is the message without what it adds to the API's window.
func windowPart(m message) map[string]any {
	out := map[string]any{}
	for k, v := range m.body {
		switch k {
		case "stream", "aggregate", "kind", "key", "update":
		default:
			out[k] = v
		}
	}
	return out
}

// TestEmitMatchesAPI: every window is published at its close, updated when
// a late event changes it, and published final once, in window order; a
// final message equals the query API's answer for the same window, group
// and parameters.
func TestEmitMatchesAPI(t *testing.T) {
	sp := spec("pv")
	r := newRig(t, sp)
	// 60 s of events, 3 per second, then wait for the windows to close.
	var offs []int64
	for ms := int64(0); ms < 60_000; ms += 333 {
		offs = append(offs, ms)
	}
	r.publish("pv", offs...)
	r.waitEmit("pv", 50*time.Second, 40*time.Second)
	// A late event in [40 s, 50 s): closed (the watermark is past 50 s),
	// not final (not past 60 s).
	r.publish("pv", 45_000)
	r.waitMessages("out.pv", "update messages", func(ms []message) bool {
		n := 0
		for _, m := range ms {
			if m.flag("update") {
				n++
			}
		}
		return n >= len(sp.Aggregates)
	})
	// Then time moves on: everything before 110 s is final.
	r.publish("pv", 120_000)
	r.waitEmit("pv", 120*time.Second, 110*time.Second)

	msgs := r.read("out.pv")
	ids := map[string]bool{}
	finals := map[string]message{}
	closes := map[string]message{}
	var updates []message
	lastStart := ""
	for _, m := range msgs {
		if ids[m.id] {
			t.Fatalf("message id %s published twice", m.id)
		}
		ids[m.id] = true
		k := m.str("aggregate") + "/" + m.group() + "/" + m.str("start")
		switch {
		case m.flag("final"):
			if _, dup := finals[k]; dup {
				t.Fatalf("two final messages for %s", k)
			}
			finals[k] = m
			if m.str("start") < lastStart {
				t.Errorf("final message for %s after one for a window starting %s", k, lastStart)
			}
			lastStart = m.str("start")
		case m.flag("update"):
			updates = append(updates, m)
		default:
			closes[k] = m
		}
	}
	if len(finals) == 0 {
		t.Fatal("no final message")
	}
	if _, ok := closes["users/DE/"+base.Add(40*time.Second).Format(time.RFC3339Nano)]; !ok {
		t.Error("window [40 s, 50 s) has no message at close")
	}
	// Every window with data before 60 s: 6 windows × 4 aggregates × the
	// countries seen, each final once, equal to the API's answer.
	for k, m := range finals {
		got := windowPart(m)
		want := r.apiWindow("pv", m, sp.Emit[0].Params)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("%s: emitted %s\nAPI answers %s", k, gb, wb)
		}
		// A window already final when the emitter first saw it (the
		// watermark jumped past its end + lateness) has no close message.
		if c, ok := closes[k]; !ok {
			if m.flag("update") {
				t.Errorf("%s: final without a message at close marked update", k)
			}
		} else if !m.flag("update") {
			t.Errorf("%s: final message after one at close should be update: true", k)
		} else if c.flag("final") || c.seq > m.seq {
			t.Errorf("%s: close message %v after final %v", k, c.seq, m.seq)
		}
	}
	for k := range closes {
		if _, ok := finals[k]; !ok {
			t.Errorf("%s: closed but never final", k)
		}
	}
	// The late event: one update per aggregate for its group and window,
	// one event more than at close, and the final message has it too.
	if len(updates) != len(sp.Aggregates) {
		t.Fatalf("%d update messages, want one per aggregate (%d)", len(updates), len(sp.Aggregates))
	}
	late := base.Add(40 * time.Second).Format(time.RFC3339Nano)
	for _, u := range updates {
		k := u.str("aggregate") + "/" + u.group() + "/" + u.str("start")
		if u.str("start") != late || u.flag("final") {
			t.Errorf("update %s: want window %s, not final", k, late)
		}
		if c := closes[k]; u.events() != c.events()+1 {
			t.Errorf("update %s: %v events, at close %v: want one more", k, u.events(), c.events())
		}
		if f := finals[k]; f.events() != u.events() {
			t.Errorf("final %s: %v events, update %v", k, f.events(), u.events())
		}
	}
	t.Logf("%d messages: %d at close, %d updates, %d final", len(msgs), len(closes), len(updates), len(finals))

	// A restart that lost its cursor (a crash between the publishes and
	// the cursor write) publishes again under the same ids: the target
	// stream keeps one of each.
	r.stopSvc()
	id := r.status("pv").ID
	if err := r.db.SetEmitCursor(t.Context(), id, "out.pv", store.EmitCursor{ClosedTo: base.UnixNano(), FinalTo: base.UnixNano()}); err != nil {
		t.Fatal(err)
	}
	r.svc, r.stopSvc = r.startService()
	r.waitEmit("pv", 120*time.Second, 110*time.Second)
	st := r.svc.Status("pv")[0]
	if again := r.read("out.pv"); len(again) != len(msgs) {
		t.Errorf("after a replay the target holds %d messages, before %d", len(again), len(msgs))
	}
	if st.Duplicates != uint64(len(finals)) || st.Messages != uint64(len(finals)) {
		t.Errorf("replay: %d published, %d duplicates; want %d of each", st.Messages, st.Duplicates, len(finals))
	}
}

func (r *rig) status(name string) sketchd.StreamStatus {
	r.t.Helper()
	st, err := r.mgr.Get(r.t.Context(), name)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}
