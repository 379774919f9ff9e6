package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
	"github.com/sketchd/sketchd/sketch"
)

func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	if os.Getenv("SKETCHD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runNATS starts a real nats-server with JetStream on a temp dir.
func runNATS(tb testing.TB) *server.Server {
	tb.Helper()
	ns, err := StartServer(ServerOptions{Port: -1, StoreDir: tb.TempDir()}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func connect(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, _, err := Connect(ConnOptions{URL: url}, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// newQuerier returns a querier over r that tb closes when it ends: Close
// stops the worker of the ahead jobs a question may have started.
func newQuerier(tb testing.TB, r query.PaneReader, opts query.Options) *query.Querier {
	tb.Helper()
	q := query.New(r, opts)
	tb.Cleanup(q.Close)
	return q
}

func openStore(tb testing.TB, dir string) *store.DB {
	tb.Helper()
	db, err := store.Open(dir, testLogger(tb), nil, store.DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func pageviews(name string, jetStream bool) sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name = name
	s.Subject = "events." + name
	s.JetStream = jetStream
	s.Time = sketchd.TimeSpec{Field: "ts", Format: sketchd.TimeUnixMS}
	s.GroupBy = []string{"country"}
	s.MaxOutOfOrderness = sketchd.Duration(5 * time.Second)
	s.AllowedLateness = sketchd.Duration(30 * time.Second)
	s.MaxFuture = sketchd.Duration(100 * 365 * 24 * time.Hour)
	// The events are dated from base, a fixed day: a retention of a week
	// would make them too late a week after it.
	s.Retention = sketchd.Duration(100 * 365 * 24 * time.Hour)
	s.IdleTimeout = 0
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "ms"},
		"sample":  {Sketch: sketchd.KindReservoir, Size: 4},
	}
	s.Normalize()
	return s
}

// base is 10:00 UTC yesterday: event times must stay inside the default
// retention (168h) whatever day the tests run, or every event is too late.
var base = time.Now().UTC().Truncate(24 * time.Hour).Add(-14 * time.Hour)

type event struct {
	TS      int64   `json:"ts"`
	Country string  `json:"country"`
	User    string  `json:"user"`
	URL     string  `json:"url"`
	MS      float64 `json:"ms"`
}

func (e event) json() []byte {
	b, _ := json.Marshal(e)
	return b
}

func genEvents(seed uint64, n int) []event {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]event, n)
	for i := range out {
		out[i] = event{
			TS:      base.Add(time.Duration(i) * 10 * time.Millisecond).UnixMilli(),
			Country: []string{"DE", "FR", "US", "JP"}[rng.IntN(4)],
			User:    fmt.Sprintf("u%d", rng.IntN(2000)),
			URL:     fmt.Sprintf("/p/%d", rng.IntN(50)),
			MS:      rng.ExpFloat64() * 100,
		}
	}
	return out
}

// publishAcked publishes evs to subject prefix + each event's user and
// waits (30 s at most) until JetStream acknowledged every one.
func publishAcked(t *testing.T, js jetstream.JetStream, prefix string, evs []event) {
	t.Helper()
	for _, e := range evs {
		if _, err := js.PublishAsync(prefix+e.User, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acknowledged")
	}
}

func newManager(tb testing.TB, nc *nats.Conn, db Store, opts Options) *Manager {
	tb.Helper()
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 50 * time.Millisecond
	}
	m, err := NewManager(nc, nil, db, testLogger(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("timed out waiting for %s: %s", what, last)
}

// paneTotals sums the exact per-pane counts of a stream in the store.
func paneTotals(tb testing.TB, db *store.DB, id uint32) (map[string]uint64, uint64) {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	if err := db.Keys(ctx, id, -1<<62, 1<<62, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		tb.Fatal(err)
	}
	per := map[string]uint64{}
	var total uint64
	err := db.ScanPanes(ctx, id, keys, -1<<62, 1<<62, func(r sketchd.PaneRecord) error {
		vals, _ := sketchd.DecodeKey(r.Key)
		per[strings.Join(vals, ",")] += r.Events
		total += r.Events
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return per, total
}

func TestJetStreamIngest(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := pageviews("pv", true)
	m := newManager(t, nc, db, Options{})
	ctx := context.Background()

	invalid := make(chan *nats.Msg, 100)
	lateCh := make(chan *nats.Msg, 100)
	if _, err := nc.ChanSubscribe(spec.DeadLetterSubject, invalid); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.ChanSubscribe(spec.LateSubject, lateCh); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	evs := genEvents(1, 3000)
	truth := map[string]uint64{}
	users := map[string]bool{}
	// One message per event for the first half, newline-delimited batches
	// of 10 for the rest.
	for i := 0; i < len(evs); {
		var payload []byte
		n := 1
		if i >= len(evs)/2 {
			n = 10
		}
		for j := i; j < min(i+n, len(evs)); j++ {
			payload = append(append(payload, evs[j].json()...), '\n')
			truth[evs[j].Country]++
			users[evs[j].User] = true
		}
		if _, err := js.Publish(ctx, spec.Subject, payload); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	bad := [][]byte{
		[]byte(`{"ts": 1, "country": "DE"`),                                    // bad_json
		[]byte(`{"country": "DE", "user": "x"}`),                               // missing_time
		[]byte(`{"ts": 1764064800000, "user": "x"}`),                           // missing_dimension
		[]byte(`{"ts": 1764064800000, "country": "DE", "ms": "slow"}`),         // wrong_type
		[]byte(`[1, 2, 3]`),                                                    // not_object
		[]byte(`{"ts": 1764064800000, "country": {"a": 1}, "user": "x"}`),      // bad_dimension
		[]byte(`{"ts": "yesterday", "country": "DE", "user": "x", "ms": 1.5}`), // bad_time
	}
	for _, b := range bad {
		if _, err := js.Publish(ctx, spec.Subject, b); err != nil {
			t.Fatal(err)
		}
	}
	// Far behind the watermark: too late.
	tooLate := event{TS: base.Add(-time.Hour).UnixMilli(), Country: "DE", User: "late", URL: "/x", MS: 1}
	if _, err := js.Publish(ctx, spec.Subject, tooLate.json()); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 20*time.Second, "every event committed", func() (bool, string) {
		st, err := m.Get(ctx, spec.Name)
		if err != nil {
			return false, err.Error()
		}
		c := st.Counters
		var inv uint64
		for _, n := range c.Invalid {
			inv += n
		}
		done := c.OnTime+c.Late == uint64(len(evs)) && c.TooLate == 1 && inv == uint64(len(bad)) && st.AckFloor > 0
		return done && st.Pending == 0, fmt.Sprintf("%+v pending=%d ackfloor=%d", c, st.Pending, st.AckFloor)
	})
	if _, err := m.Get(ctx, "nope"); !errors.Is(err, sketchd.ErrNotFound) {
		t.Errorf("Get of an unknown stream: %v, want sketchd.ErrNotFound", err)
	}
	st, _ := m.Get(ctx, spec.Name)
	for _, r := range []decode.Reason{decode.ReasonBadJSON, decode.ReasonMissingTime, decode.ReasonMissingDimension, decode.ReasonWrongType, decode.ReasonNotObject, decode.ReasonBadDimension, decode.ReasonBadTime} {
		if st.Counters.Invalid[string(r)] != 1 {
			t.Errorf("invalid[%s] = %d, want 1 (%v)", r, st.Counters.Invalid[string(r)], st.Counters.Invalid)
		}
	}
	waitFor(t, 5*time.Second, "panes committed", func() (bool, string) {
		_, total := paneTotals(t, db, st.ID)
		return total == uint64(len(evs)), fmt.Sprintf("%d events in panes", total)
	})
	per, _ := paneTotals(t, db, st.ID)
	for c, n := range truth {
		if per[c] != n {
			t.Errorf("country %s: %d events in panes, want %d", c, per[c], n)
		}
	}

	// Dead letters carry the reason.
	reasons := map[string]bool{}
	for range bad {
		select {
		case msg := <-invalid:
			reasons[msg.Header.Get("Sketchd-Reason")] = true
			if msg.Header.Get("Sketchd-Stream") != spec.Name || msg.Header.Get("Sketchd-Sequence") == "" {
				t.Errorf("dead letter headers %v", msg.Header)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d dead letters", len(reasons))
		}
	}
	if len(reasons) != len(bad) {
		t.Errorf("dead-letter reasons %v", reasons)
	}
	select {
	case msg := <-lateCh:
		if msg.Header.Get("Sketchd-Reason") != "too_late" || !strings.Contains(string(msg.Data), `"late"`) {
			t.Errorf("late letter %q %v", msg.Data, msg.Header)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no late letter")
	}

	// The distinct count over everything is within its bound.
	q := newQuerier(t, db, query.Options{})
	res, err := q.Query(ctx, query.Target{ID: st.ID, Spec: st.Spec, Watermark: st.CommittedWatermark},
		query.Query{Aggregate: "users", From: base.Add(-time.Hour).UnixNano(), To: base.Add(time.Hour).UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	est := res.Groups[0].Windows[0].Sketch.(*sketch.HLL).Estimate()
	if n := float64(len(users)); n < est.Lower || n > est.Upper {
		t.Errorf("distinct users %v outside [%v, %v]", n, est.Lower, est.Upper)
	}
	if res.Groups[0].Windows[0].Events != uint64(len(evs)) {
		t.Errorf("query counts %d events, want %d", res.Groups[0].Windows[0].Events, len(evs))
	}
}

// TestRestartResumes stops a manager mid-stream and starts a new one on the
// same store and JetStream: every event is counted once.
func TestRestartResumes(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	dir := t.TempDir()
	db := openStore(t, dir)
	spec := pageviews("rs", true)
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	evs := genEvents(2, 4000)

	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[:2000] {
		if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[2000:] {
		if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	m2 := newManager(t, nc, db, Options{})
	if err := m2.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m2.Stop(ctx) }()
	st, _ := m2.Get(ctx, spec.Name)
	waitFor(t, 20*time.Second, "all events", func() (bool, string) {
		_, total := paneTotals(t, db, st.ID)
		return total == uint64(len(evs)), fmt.Sprintf("%d of %d", total, len(evs))
	})
	time.Sleep(200 * time.Millisecond) // a few more flushes: nothing more may arrive
	if _, total := paneTotals(t, db, st.ID); total != uint64(len(evs)) {
		t.Fatalf("%d events in panes, want %d", total, len(evs))
	}
	st, _ = m2.Get(ctx, spec.Name)
	if c := st.Counters; c.OnTime+c.Late != uint64(len(evs)) {
		t.Fatalf("counters %+v, want %d applied", c, len(evs))
	}
}

// TestCoreDropsCounted: a core NATS stream whose consumer cannot keep up
// drops messages, and every one of them is counted.
func TestCoreDropsCounted(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	pub := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := pageviews("core", false)
	ctx := context.Background()
	m := newManager(t, nc, db, Options{QueueMessages: 1, CorePendingMsgs: 16, CorePendingBytes: 1 << 20,
		Window: window.Options{Shards: 1, QueueLen: 1}})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	const n = 20000
	evs := genEvents(3, n)
	for _, e := range evs {
		if err := pub.Publish(spec.Subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	r := m.runners[spec.Name]
	m.mu.Unlock()
	waitFor(t, 20*time.Second, "received + dropped = published", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		got := r.intake.received.Load() + st.Dropped
		return got == n, fmt.Sprintf("received %d dropped %d", r.intake.received.Load(), st.Dropped)
	})
	st, _ := m.Get(ctx, spec.Name)
	if st.Dropped == 0 {
		t.Fatal("the slow consumer dropped nothing: the test did not exercise drops")
	}
	waitFor(t, 10*time.Second, "applied = received", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		return st.Counters.OnTime+st.Counters.Late == r.intake.received.Load(), fmt.Sprintf("%+v", st.Counters)
	})
}

// publisher publishes evs to subject with a message ID per event, retrying
// until each publish is acknowledged.
func publishAll(ctx context.Context, js jetstream.JetStream, subject string, evs []event, from, to int, wg *sync.WaitGroup, errs chan<- error) {
	defer wg.Done()
	for i := from; i < to; i++ {
		for {
			_, err := js.Publish(ctx, subject, evs[i].json(), jetstream.WithMsgID(fmt.Sprint("e", i)))
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				errs <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
