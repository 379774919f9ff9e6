package ingest

// Regression tests of issue 15 (stream lifecycle): hostile specs,
// self-feeding subjects, create/delete races, re-created names, DELETE and
// limits. Each goes through the real router, a real nats-server and a real
// Badger. docs/reliability.md tabulates them with their figures.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// lifeFixture is a manager over a real NATS and Badger behind the real
// router, served over HTTP.
type lifeFixture struct {
	ns   interface{ ClientURL() string }
	nc   *nats.Conn
	cs   *ConnState
	js   jetstream.JetStream
	m    *Manager
	db   *store.DB
	url  string
	http *http.Client
}

func newLifeFixture(tb testing.TB, opts Options) *lifeFixture {
	tb.Helper()
	return newLifeFixtureOn(tb, runNATS(tb), opts)
}

// newLifeFixtureOn is newLifeFixture on the NATS server ns: a second
// instance (its own store and router) beside another one.
func newLifeFixtureOn(tb testing.TB, ns interface{ ClientURL() string }, opts Options) *lifeFixture {
	tb.Helper()
	nc, cs, err := Connect(ConnOptions{URL: ns.ClientURL(), ReconnectWait: 50 * time.Millisecond}, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cs.Shutdown(); cs.Current().Close() })
	db := openStore(tb, tb.TempDir())
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 50 * time.Millisecond
	}
	m, err := NewManager(nc, cs, db, testLogger(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Start(context.Background(), nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Stop(context.Background()) })
	srv := httptest.NewServer(newTestAPI(tb, m, db, 10*time.Second))
	tb.Cleanup(srv.Close)
	js, _ := jetstream.New(nc)
	return &lifeFixture{ns: ns, nc: nc, cs: cs, js: js, m: m, db: db, url: srv.URL, http: srv.Client()}
}

type apiAnswer struct {
	status int
	body   []byte
}

func (a apiAnswer) problem(tb testing.TB) (code string, errs []string) {
	tb.Helper()
	var p struct {
		Code   string `json:"code"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		tb.Fatalf("problem %q: %v", a.body, err)
	}
	for _, e := range p.Errors {
		errs = append(errs, e.Field+": "+e.Message)
	}
	return p.Code, errs
}

func (f *lifeFixture) do(tb testing.TB, method, path string, body string) apiAnswer {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.http.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiAnswer{resp.StatusCode, b}
}

func (f *lifeFixture) readyz(tb testing.TB) apiAnswer { return f.do(tb, http.MethodGet, "/readyz", "") }

func specJSON(name, subject string, jetStream bool, extra string) string {
	return fmt.Sprintf(`{"name":%q,"subject":%q,"jetstream":%t,"aggregates":{"u":{"sketch":"hll","field":"user"}}%s}`,
		name, subject, jetStream, extra)
}

// Item 1: a 4,100-character subject (or dead-letter subject) is refused
// with 400 listing every problem, and the shared connection stays up.
func TestHostileSubjectsRefused(t *testing.T) {
	f := newLifeFixture(t, Options{})
	long := strings.Repeat("a", 4100)
	cases := []struct {
		name, body string
		want       []string // fields that must be named
	}{
		{"long subject", specJSON("slong", long, false, ""), []string{"subject"}},
		{"long dead-letter subject", specJSON("sdl", "ev.sdl", false, `,"dead_letter_subject":"`+long+`"`), []string{"dead_letter_subject"}},
		{"long late subject", specJSON("slate", "ev.slate", true, `,"late_subject":"`+long+`"`), []string{"late_subject"}},
		{"every problem at once", specJSON("sall", "a b.*x..>.c", false, `,"dead_letter_subject":"dl.*","late_subject":"`+long+`"`),
			[]string{"subject", "dead_letter_subject", "late_subject"}},
		{"NUL", `{"name":"snul","subject":"ev.\u0000","jetstream":false,"aggregates":{"u":{"sketch":"hll","field":"user"}}}`, []string{"subject"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, "/v1/streams", c.body)
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			code, errs := a.problem(t)
			if code != "invalid_stream_spec" {
				t.Errorf("code %q", code)
			}
			for _, field := range c.want {
				if !strings.Contains(strings.Join(errs, "\n"), field+": ") {
					t.Errorf("no problem names %s: %q", field, errs)
				}
			}
			t.Logf("%d problems: %q", len(errs), errs)
		})
	}
	if c := f.do(t, http.MethodGet, "/v1/streams", ""); !bytes.Contains(c.body, []byte(`"streams":[]`)) {
		t.Errorf("refused specs were stored: %s", c.body)
	}
	if a := f.readyz(t); a.status != http.StatusOK || !f.nc.IsConnected() {
		t.Errorf("/readyz %d %s; connected %v", a.status, a.body, f.nc.IsConnected())
	}
}

// Item 1: a connection the server closes for good (here by a 4,100-byte
// subject, which exceeds its control-line limit) is replaced; readiness
// says so while it is down, and streams ingest again on the new one.
func TestClosedConnectionRecovers(t *testing.T) {
	f := newLifeFixture(t, Options{})
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("core", "ev.core", false, "")); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("jsr", "ev.jsr", true, "")); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	closed := f.nc.StatusChanged(nats.CLOSED)
	began := time.Now()
	_ = f.nc.Publish(strings.Repeat("a", 4100), []byte("x"))
	_ = f.nc.Flush()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not close the connection")
	}
	t.Logf("closed by the server: %v", f.nc.LastError())
	waitFor(t, 15*time.Second, "a new connection and /readyz 200", func() (bool, string) {
		a := f.readyz(t)
		return a.status == http.StatusOK && f.cs.Redials() == 1, fmt.Sprintf("readyz %d %s, redials %d", a.status, a.body, f.cs.Redials())
	})
	t.Logf("ready on a new connection %s after the close", time.Since(began).Round(time.Millisecond))
	if got := mustMetric(t, f.m, "sketchd_nats_redials_total"); got != 1 {
		t.Errorf("sketchd_nats_redials_total %v, want 1", got)
	}
	pub := f.cs.Current()
	if pub == f.nc || !pub.IsConnected() {
		t.Fatal("the connection was not replaced")
	}
	for _, name := range []string{"core", "jsr"} {
		waitFor(t, 10*time.Second, name+" running again", func() (bool, string) {
			st, err := f.m.Get(context.Background(), name)
			return err == nil && st.State == "running", fmt.Sprintf("%+v %v", st.State, err)
		})
	}
	// Events published after the recovery are ingested by both.
	evs := genEvents(7, 50)
	waitFor(t, 15*time.Second, "events ingested on the new connection", func() (bool, string) {
		for _, e := range evs[:5] {
			_ = pub.Publish("ev.core", e.json())
			_ = pub.Publish("ev.jsr", e.json())
		}
		c, _ := f.m.Get(context.Background(), "core")
		j, _ := f.m.Get(context.Background(), "jsr")
		return c.Counters.OnTime+c.Counters.Late > 0 && j.Counters.OnTime+j.Counters.Late > 0,
			fmt.Sprintf("core %+v, jsr %+v", c.Counters, j.Counters)
	})
}

// Item 2: subjects that would read sketchd's own output are refused.
func TestSelfFeedingSubjectsRefused(t *testing.T) {
	f := newLifeFixture(t, Options{})
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("a", "ev.a", false, `,"dead_letter_subject":"dl.a","late_subject":"late.a"`)); a.status != http.StatusCreated {
		t.Fatalf("create a: %d %s", a.status, a.body)
	}
	cases := []struct{ name, body, field string }{
		{"everything", specJSON("all", ">", false, ""), "subject"},
		{"sketchd prefix", specJSON("pre", "sketchd.>", false, ""), "subject"},
		{"own dead letters", specJSON("loopjs", "sketchd.invalid.loopjs", true, ""), "subject"},
		{"own custom dead letters", specJSON("own", "x.>", false, `,"dead_letter_subject":"x.dead"`), "dead_letter_subject"},
		{"own custom late subject", specJSON("ownl", "y.*", true, `,"late_subject":"y.late"`), "late_subject"},
		{"another stream's dead letters", specJSON("b", "dl.*", false, ""), "subject"},
		{"another stream's late subject", specJSON("c", "late.>", false, ""), "subject"},
		{"dead letters into another stream", specJSON("d", "ev.d", false, `,"dead_letter_subject":"ev.a"`), "dead_letter_subject"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, "/v1/streams", c.body)
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			_, errs := a.problem(t)
			if !strings.Contains(strings.Join(errs, "\n"), c.field+": ") {
				t.Errorf("no problem names %s: %q", c.field, errs)
			}
			t.Logf("%q", errs)
		})
	}
}

// Item 2: a message of many invalid lines gives one dead letter listing
// them; the stream's bucket bounds the rest and counts what it held back.
func TestDeadLettersBounded(t *testing.T) {
	f := newLifeFixture(t, Options{DeadLetterRate: 1, DeadLetterBurst: 5})
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("amp", "ev.amp", false, "")); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	dl := make(chan *nats.Msg, 100_000)
	sub, err := f.nc.ChanSubscribe("sketchd.invalid.amp", dl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = f.nc.Flush()
	const lines = 10_000
	big := bytes.Repeat([]byte("{]\n"), lines)
	if err := f.nc.Publish("ev.amp", big); err != nil {
		t.Fatal(err)
	}
	var msg *nats.Msg
	select {
	case msg = <-dl:
	case <-time.After(10 * time.Second):
		st, _ := f.m.Get(context.Background(), "amp")
		t.Fatalf("no dead letter; counters %+v", st.Counters)
	}
	if got := msg.Header.Get("Sketchd-Invalid-Lines"); got != fmt.Sprint(lines) {
		t.Errorf("Sketchd-Invalid-Lines %q, want %d", got, lines)
	}
	if n := strings.Count(msg.Header.Get("Sketchd-Lines"), ",") + 1; n != maxListedLines {
		t.Errorf("Sketchd-Lines lists %d lines, want %d", n, maxListedLines)
	}
	// 50 more bad messages: the burst of 5 (one spent) lets 4 through
	// within a second, the rest are counted as suppressed.
	for range 50 {
		_ = f.nc.Publish("ev.amp", []byte("not json"))
	}
	waitFor(t, 10*time.Second, "the 51 messages processed", func() (bool, string) {
		st, _ := f.m.Get(context.Background(), "amp")
		return st.Counters.Invalid != nil && sumInvalid(st) == lines+50, fmt.Sprint(st.Counters.Invalid)
	})
	time.Sleep(200 * time.Millisecond) // let the published letters arrive
	got := 1 + len(dl)
	supp := mustMetric(t, f.m, "sketchd_dead_letters_suppressed_total", "amp", "invalid")
	if got > 5+5 || got < 5 || int(supp)+got != 51 {
		t.Errorf("%d dead letters and %v suppressed for 51 bad messages (10,050 bad lines); want about 5 and the rest suppressed", got, supp)
	}
	t.Logf("10,000 bad lines in one message -> 1 dead letter; 50 more bad messages -> %d dead letters, %v suppressed", got-1, supp)
}

func sumInvalid(st sketchd.StreamStatus) uint64 {
	var n uint64
	for _, v := range st.Counters.Invalid {
		n += v
	}
	return n
}

// Item 3: 4 creators and 4 deleters of one name, with 2 queriers, leave
// no goroutine, consumer or failure behind.
func TestCreateDeleteStorm(t *testing.T) {
	f := newLifeFixture(t, Options{})
	spec := specJSON("cd", "ev.cd", true, "")
	// Warm up: one create and delete, so the HTTP client's connections
	// and the JetStream context's goroutines exist in the baseline.
	f.do(t, http.MethodPost, "/v1/streams", spec)
	f.do(t, http.MethodDelete, "/v1/streams/cd", "")
	f.http.CloseIdleConnections()
	before := settledGoroutines(0, 0)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		summary = map[string]int{}
	)
	end := time.Now().Add(3 * time.Second)
	worker := func(method, path, body string) {
		defer wg.Done()
		for time.Now().Before(end) {
			a := f.do(t, method, path, body)
			mu.Lock()
			summary[fmt.Sprint(method, " ", a.status)]++
			mu.Unlock()
		}
	}
	for range 4 {
		wg.Add(2)
		go worker(http.MethodPost, "/v1/streams", spec)
		go worker(http.MethodDelete, "/v1/streams/cd", "")
	}
	for range 2 {
		wg.Add(1)
		go worker(http.MethodGet, "/v1/streams/cd", "")
	}
	wg.Wait()
	if a := f.do(t, http.MethodDelete, "/v1/streams/cd", ""); a.status != http.StatusNoContent && a.status != http.StatusNotFound {
		t.Fatalf("final delete: %d %s", a.status, a.body)
	}
	f.http.CloseIdleConnections()
	after := settledGoroutines(before, 20*time.Second)
	if after > before+5 {
		t.Errorf("goroutines %d after the storm, %d before", after, before)
	}
	f.m.mu.Lock()
	runners, failed := len(f.m.runners), len(f.m.failed)
	f.m.mu.Unlock()
	if runners != 0 || failed != 0 {
		t.Errorf("%d runners and %d failed starts left", runners, failed)
	}
	if _, err := f.js.Stream(context.Background(), "SKETCHD_CD"); err == nil {
		t.Error("the JetStream stream sketchd created is left")
	}
	if a := f.readyz(t); a.status != http.StatusOK {
		t.Errorf("/readyz %d %s", a.status, a.body)
	}
	// The name is usable again, and runs.
	if a := f.do(t, http.MethodPost, "/v1/streams", spec); a.status != http.StatusCreated || !bytes.Contains(a.body, []byte(`"state":"running"`)) {
		t.Errorf("create after the storm: %d %s", a.status, a.body)
	}
	t.Logf("requests %v; goroutines before %d, after %d", summary, before, after)
}

// settledGoroutines waits (up to d) until the goroutine count is at most
// target+5 (target 0: until it stops changing) and returns it.
func settledGoroutines(target int, d time.Duration) int {
	deadline := time.Now().Add(max(d, time.Second))
	last := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if (target > 0 && n <= target+5) || (target == 0 && n == last) {
			return n
		}
		last = n
	}
	return last
}

// publishJSWait publishes evs to subject through JetStream (the publish
// fails when no JetStream stream captures it).
func publishEvents(tb testing.TB, js jetstream.JetStream, subject string, evs []event) {
	tb.Helper()
	for _, e := range evs {
		if _, err := js.Publish(context.Background(), subject, e.json()); err != nil {
			tb.Fatalf("publish to %s: %v", subject, err)
		}
	}
}

func appliedOf(tb testing.TB, m *Manager, name string) uint64 {
	tb.Helper()
	st, err := m.Get(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return applied(st)
}

// Items 4 and 5: re-creating a name with another subject reads the new
// subject (the JetStream stream sketchd created is updated), DELETE
// removes the JetStream stream and so the old events, and keep_events
// keeps them; the durable consumer goes either way.
func TestRecreateAndDelete(t *testing.T) {
	f := newLifeFixture(t, Options{})
	ts := `,"time":{"field":"ts","format":"unix_ms"},"max_future":"876000h","retention":"876000h"`
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("mf", "t.mf", true, ts)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	evs := genEvents(3, 40)
	publishEvents(t, f.js, "t.mf", evs[:20])
	waitFor(t, 10*time.Second, "20 events", func() (bool, string) {
		n := appliedOf(t, f.m, "mf")
		return n == 20, fmt.Sprint(n)
	})
	// keep_events: the JetStream stream and its events stay, the consumer
	// goes.
	if a := f.do(t, http.MethodDelete, "/v1/streams/mf?keep_events=true", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	s, err := f.js.Stream(context.Background(), "SKETCHD_MF")
	if err != nil {
		t.Fatalf("keep_events: the JetStream stream is gone: %v", err)
	}
	if n := s.CachedInfo().State.Msgs; n != 20 {
		t.Errorf("keep_events: %d events kept, want 20", n)
	}
	if c := s.CachedInfo().State.Consumers; c != 0 {
		t.Errorf("%d consumers left after DELETE", c)
	}
	// Re-created on the same subject: the kept events are replayed.
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("mf", "t.mf", true, ts)); a.status != http.StatusCreated {
		t.Fatalf("re-create: %d %s", a.status, a.body)
	}
	waitFor(t, 10*time.Second, "the 20 kept events replayed", func() (bool, string) {
		n := appliedOf(t, f.m, "mf")
		return n == 20, fmt.Sprint(n)
	})
	// Re-created on another subject: the kept JetStream stream (ours)
	// moves to it, and what is published there is read (before, nothing
	// captured it and every counter stayed 0).
	if a := f.do(t, http.MethodDelete, "/v1/streams/mf?keep_events=true", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("mf", "ev.mf", true, ts)); a.status != http.StatusCreated {
		t.Fatalf("re-create: %d %s", a.status, a.body)
	}
	publishEvents(t, f.js, "ev.mf", evs[20:])
	waitFor(t, 10*time.Second, "the 20 events of the new subject", func() (bool, string) {
		n := appliedOf(t, f.m, "mf")
		return n == 20, fmt.Sprint(n)
	})
	s, _ = f.js.Stream(context.Background(), "SKETCHD_MF")
	if subj := s.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != "ev.mf" {
		t.Errorf("JetStream stream subjects %q, want [ev.mf]", subj)
	}
	// A plain DELETE removes the events: a re-create starts empty. An
	// ephemeral reader left on the JetStream stream (a backfill's ordered
	// consumer stays for its 5-minute inactive threshold) does not keep it.
	oc, err := f.js.OrderedConsumer(context.Background(), "SKETCHD_MF", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Fetch(1, jetstream.FetchMaxWait(time.Second)); err != nil {
		t.Fatal(err)
	}
	if a := f.do(t, http.MethodDelete, "/v1/streams/mf", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if _, err := f.js.Stream(context.Background(), "SKETCHD_MF"); err == nil {
		t.Error("DELETE left the JetStream stream sketchd created")
	}
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("mf", "ev.mf", true, ts)); a.status != http.StatusCreated {
		t.Fatalf("re-create: %d %s", a.status, a.body)
	}
	time.Sleep(300 * time.Millisecond) // 6 flush intervals: time to replay anything left
	if n := appliedOf(t, f.m, "mf"); n != 0 {
		t.Errorf("re-created after DELETE: %d old events re-ingested", n)
	}
}

// Item 4: a JetStream stream sketchd did not create must capture the
// subject, or the create is refused with the reason; it is never deleted.
func TestForeignJetStreamStream(t *testing.T) {
	f := newLifeFixture(t, Options{})
	if _, err := f.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	a := f.do(t, http.MethodPost, "/v1/streams", specJSON("o", "other.x", true, `,"jetstream_stream":"ORDERS"`))
	if a.status != http.StatusBadRequest || !bytes.Contains(a.body, []byte("jetstream_stream")) {
		t.Fatalf("subject outside a foreign JetStream stream: %d %s", a.status, a.body)
	}
	t.Logf("refused: %s", a.body)
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("o", "orders.eu", true, `,"jetstream_stream":"ORDERS"`)); a.status != http.StatusCreated {
		t.Fatalf("subject inside: %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodDelete, "/v1/streams/o", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if _, err := f.js.Stream(context.Background(), "ORDERS"); err != nil {
		t.Errorf("DELETE removed a JetStream stream sketchd did not create: %v", err)
	}
}

// Item 6: streams per instance and aggregates per stream are capped.
func TestLimits(t *testing.T) {
	f := newLifeFixture(t, Options{MaxStreams: 2, MaxAggregates: 3})
	for i := range 2 {
		if a := f.do(t, http.MethodPost, "/v1/streams", specJSON(fmt.Sprint("l", i), fmt.Sprint("ev.l", i), false, "")); a.status != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i, a.status, a.body)
		}
	}
	a := f.do(t, http.MethodPost, "/v1/streams", specJSON("l2", "ev.l2", false, ""))
	if code, _ := a.problem(t); a.status != http.StatusUnprocessableEntity || code != "limit_reached" || !bytes.Contains(a.body, []byte(`"limit":"max_streams"`)) {
		t.Errorf("third stream: %d %s", a.status, a.body)
	}
	f.do(t, http.MethodDelete, "/v1/streams/l1", "")
	four := `{"name":"agg","subject":"ev.agg","jetstream":false,"aggregates":{"a":{"sketch":"hll","field":"a"},"b":{"sketch":"hll","field":"b"},"c":{"sketch":"hll","field":"c"},"d":{"sketch":"hll","field":"d"}}}`
	a = f.do(t, http.MethodPost, "/v1/streams", four)
	if a.status != http.StatusUnprocessableEntity || !bytes.Contains(a.body, []byte(`"limit":"max_aggregates"`)) {
		t.Errorf("four aggregates: %d %s", a.status, a.body)
	}
}

// Item 7: a jetstream_max_age below the 2-minute duplicate window runs
// (the window shortens); a stream that cannot start says so in its own
// status, while /readyz stays about the instance.
func TestShortMaxAgeRuns(t *testing.T) {
	f := newLifeFixture(t, Options{})
	a := f.do(t, http.MethodPost, "/v1/streams", specJSON("short", "ev.short", true, `,"jetstream_max_age":"30s"`))
	if a.status != http.StatusCreated || !bytes.Contains(a.body, []byte(`"state":"running"`)) {
		t.Fatalf("max age 30s: %d %s", a.status, a.body)
	}
	s, err := f.js.Stream(context.Background(), "SKETCHD_SHORT")
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != 30*time.Second || c.Duplicates != 30*time.Second {
		t.Errorf("max age %s, duplicates %s; want 30s and 30s", c.MaxAge, c.Duplicates)
	}
	if a := f.readyz(t); a.status != http.StatusOK {
		t.Errorf("/readyz %d %s", a.status, a.body)
	}
}

// Item 9: PATCH changes retention, lateness, out-of-orderness and
// idleness without losing history; it is listed in the status; group_by,
// granularity and aggregates are refused with the reason.
func TestAlter(t *testing.T) {
	f := newLifeFixture(t, Options{})
	ts := `,"time":{"field":"ts","format":"unix_ms"},"group_by":["country"],"max_future":"876000h","retention":"876000h"`
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("alt", "ev.alt", true, ts)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	evs := genEvents(11, 60)
	publishEvents(t, f.js, "ev.alt", evs[:30])
	waitFor(t, 10*time.Second, "30 events", func() (bool, string) {
		n := appliedOf(t, f.m, "alt")
		return n == 30, fmt.Sprint(n)
	})
	for _, c := range []struct{ body, field string }{
		{`{"group_by":["user"]}`, "group_by"},
		{`{"granularity":"5m"}`, "granularity"},
		{`{"aggregates":{"u":{"sketch":"hll","field":"user","precision":10}}}`, "aggregates.u"},
		{`{"aggregates":{"nope":null}}`, "aggregates.nope"},
		{`{"aggregates":{"u":null}}`, "aggregates"},
		{`{"aggregates":{"x":{"sketch":"hll","field":"x","since":"2026-01-01T00:00:00Z"}}}`, "aggregates.x.since"},
		{`{"retention":"1s"}`, "retention"},
	} {
		a := f.do(t, http.MethodPatch, "/v1/streams/alt", c.body)
		_, errs := a.problem(t)
		if a.status != http.StatusBadRequest || !strings.Contains(strings.Join(errs, "\n"), c.field+": ") {
			t.Errorf("PATCH %s: %d %s", c.body, a.status, a.body)
		}
	}
	a := f.do(t, http.MethodPatch, "/v1/streams/alt", `{"retention":"900000h","allowed_lateness":"2m","max_out_of_orderness":"20s","idle_timeout":"1m"}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	var st struct {
		State  string               `json:"state"`
		Alters []sketchd.Alteration `json:"alters"`
		Spec   sketchd.Stream       `json:"spec"`
	}
	if err := json.Unmarshal(a.body, &st); err != nil {
		t.Fatal(err)
	}
	// Five changes: the four asked for, and final_through (the lateness
	// was raised: what it had made final stays final).
	if len(st.Alters) != 1 || len(st.Alters[0].Changes) != 5 || st.Spec.AllowedLateness.Std() != 2*time.Minute || st.State != "running" ||
		st.Spec.FinalThrough == nil || !strings.HasPrefix(st.Alters[0].Changes[4], "final_through: none -> ") {
		t.Errorf("after PATCH: %s", a.body)
	}
	// History is kept and ingestion goes on.
	publishEvents(t, f.js, "ev.alt", evs[30:])
	waitFor(t, 10*time.Second, "60 events", func() (bool, string) {
		n := appliedOf(t, f.m, "alt")
		return n == 60, fmt.Sprint(n)
	})
	t.Logf("alter: %q", st.Alters[0].Changes)
}

// Two instances (two stores) on one NATS with a stream of the same name
// keep their own durable consumers: deleting one's stream leaves the
// other's consumer, and both count every event (scale-out step 1).
func TestTwoInstancesOneNATS(t *testing.T) {
	ns := runNATS(t)
	ctx := context.Background()
	var ms [2]*Manager
	for i := range ms {
		nc := connect(t, ns.ClientURL())
		ms[i] = newManager(t, nc, openStore(t, t.TempDir()), Options{})
		if err := ms[i].Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ms[i].Stop(ctx) }()
	}
	if ms[0].instance == ms[1].instance {
		t.Fatalf("both instances are %q", ms[0].instance)
	}
	spec := pageviews("shared", true)
	for _, m := range ms {
		if _, err := m.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	evs := genEvents(5, 30)
	publishEvents(t, js, spec.Subject, evs)
	for i, m := range ms {
		waitFor(t, 10*time.Second, fmt.Sprint("instance ", i, " counts 30"), func() (bool, string) {
			n := appliedOf(t, m, "shared")
			return n == 30, fmt.Sprint(n)
		})
	}
	// A plain DELETE: the JetStream stream stays, instance 1 reads it.
	if err := ms[0].Delete(ctx, "shared", sketchd.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, spec.JetStreamStream)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range s.ConsumerNames(ctx).Name() {
		names = append(names, n)
	}
	if len(names) != 1 || names[0] != ms[1].consumerName("shared") {
		t.Errorf("consumers after instance 0 deleted its stream: %q, want only %q", names, ms[1].consumerName("shared"))
	}
}

// Item 9, rollup tiers: PATCH adds a tier (listed in the spec, the status
// and the alter log, the stream running on), refuses an invalid one with
// the field, and removes it again; the stream keeps ingesting.
func TestAlterRollups(t *testing.T) {
	f := newLifeFixture(t, Options{})
	ts := `,"time":{"field":"ts","format":"unix_ms"},"group_by":["country"],"max_future":"876000h","retention":"876000h"`
	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("altr", "ev.altr", true, ts)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	evs := genEvents(12, 40)
	publishEvents(t, f.js, "ev.altr", evs[:20])
	waitFor(t, 10*time.Second, "20 events", func() (bool, string) {
		n := appliedOf(t, f.m, "altr")
		return n == 20, fmt.Sprint(n)
	})
	type status struct {
		State   string               `json:"state"`
		Alters  []sketchd.Alteration `json:"alters"`
		Spec    sketchd.Stream       `json:"spec"`
		Rollups []json.RawMessage    `json:"rollups"`
	}
	patch := func(body string, want int) status {
		t.Helper()
		a := f.do(t, http.MethodPatch, "/v1/streams/altr", body)
		if a.status != want {
			t.Fatalf("PATCH %s: %d %s", body, a.status, a.body)
		}
		var st status
		if want == http.StatusOK {
			if err := json.Unmarshal(a.body, &st); err != nil {
				t.Fatal(err)
			}
		} else if _, errs := a.problem(t); !strings.Contains(strings.Join(errs, "\n"), "rollups[0].granularity: ") {
			t.Errorf("PATCH %s: %s, want the problem on rollups[0].granularity", body, a.body)
		}
		return st
	}
	patch(`{"rollups":[{"granularity":"7m"}]}`, http.StatusBadRequest)
	st := patch(`{"rollups":[{"granularity":"5m"},{"granularity":"1h","retention":"900000h"}]}`, http.StatusOK)
	if len(st.Spec.Rollups) != 2 || st.Spec.Rollups[0].Retention != st.Spec.Retention || len(st.Rollups) != 2 ||
		len(st.Alters) != 1 || !strings.HasPrefix(st.Alters[0].Changes[0], "rollups: [] -> [5m") || st.State != "running" {
		t.Errorf("after adding tiers: %+v", st)
	}
	st = patch(`{"rollups":[{"granularity":"1h","retention":"900000h"}]}`, http.StatusOK)
	if len(st.Spec.Rollups) != 1 || st.Spec.Rollups[0].Granularity.Std() != time.Hour || len(st.Rollups) != 1 || len(st.Alters) != 2 {
		t.Errorf("after removing the 5m tier: %+v", st)
	}
	publishEvents(t, f.js, "ev.altr", evs[20:])
	waitFor(t, 10*time.Second, "40 events", func() (bool, string) {
		n := appliedOf(t, f.m, "altr")
		return n == 40, fmt.Sprint(n)
	})
	t.Logf("alters: %q", st.Alters)
}

// TestStoreRaced: the refusal nats-server answers when it cannot make a new
// stream's store (a stream of the same name deleted just before) is tried
// again; other create errors, including other 10049s, are not.
func TestStoreRaced(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}, true},
		{fmt.Errorf("create: %w", &jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}), true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "replicas > 1 not supported in non-clustered mode"}, false},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse, Description: "stream name already in use"}, false},
		{errors.New("error creating store for stream"), false},
		{nil, false},
	} {
		if got := storeRaced(c.err); got != c.want {
			t.Errorf("storeRaced(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
