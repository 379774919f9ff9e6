package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/window"
)

// paneStore is the in-memory query.PaneReader of real encoded panes.
type paneStore = panetest.Store

func newPaneStore() *paneStore { return panetest.NewStore() }

// fakeStreams is an in-memory stream registry (the only fake: queries run
// on the real query.Querier over real panes).
type fakeStreams struct {
	mu      sync.Mutex
	streams map[string]sketchd.StreamStatus
	nextID  uint32
	err     error // returned by every call when set
}

func newFakeStreams(sts ...sketchd.StreamStatus) *fakeStreams {
	f := &fakeStreams{streams: map[string]sketchd.StreamStatus{}, nextID: 100}
	for _, st := range sts {
		f.streams[st.Spec.Name] = st
	}
	return f
}

func (f *fakeStreams) List(context.Context) ([]sketchd.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []sketchd.StreamStatus
	for _, n := range slices.Sorted(maps.Keys(f.streams)) {
		out = append(out, f.streams[n])
	}
	return out, nil
}

func (f *fakeStreams) Get(_ context.Context, name string) (sketchd.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return sketchd.StreamStatus{}, f.err
	}
	st, ok := f.streams[name]
	if !ok {
		return st, sketchd.ErrNotFound
	}
	return st, nil
}

func (f *fakeStreams) Create(_ context.Context, spec sketchd.Stream) (sketchd.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return sketchd.StreamStatus{}, f.err
	}
	if err := spec.Validate(); err != nil {
		return sketchd.StreamStatus{}, err
	}
	if _, ok := f.streams[spec.Name]; ok {
		return sketchd.StreamStatus{}, fmt.Errorf("stream %q: %w", spec.Name, sketchd.ErrExists)
	}
	f.nextID++
	st := sketchd.StreamStatus{ID: f.nextID, Spec: spec, State: "starting", Created: t0,
		Watermark: sketchd.NoTime, MaxEventTime: sketchd.NoTime, CommittedWatermark: sketchd.NoTime}
	f.streams[spec.Name] = st
	return st, nil
}

func (f *fakeStreams) Delete(_ context.Context, name string, _ sketchd.DeleteOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, ok := f.streams[name]; !ok {
		return sketchd.ErrNotFound
	}
	delete(f.streams, name)
	return nil
}

func (f *fakeStreams) Alter(_ context.Context, name string, a sketchd.StreamAlter) (sketchd.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.streams[name]
	if !ok {
		return st, sketchd.ErrNotFound
	}
	spec, _, err := st.Spec.Apply(a)
	if err != nil {
		return st, err
	}
	st.Spec = spec
	f.streams[name] = st
	return st, nil
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func testSpec(tb testing.TB) sketchd.Stream {
	tb.Helper()
	s := sketchd.DefaultStream()
	s.Name = "pageviews"
	s.Subject = "events.pageviews"
	s.GroupBy = []string{"country", "device"}
	s.Time = sketchd.TimeSpec{Field: "ts"}
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url", TopK: 5},
		"latency": {Sketch: sketchd.KindTDigest, Field: "lat"},
		"sample":  {Sketch: sketchd.KindReservoir, Size: 16},
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		tb.Fatal(err)
	}
	return s
}

// tev is a generated event with its truth.
type tev struct {
	country, device string
	t               int64
	user, url       string
	lat             float64
	raw             string // the event as JSON, the reservoir item
}

var (
	countries = []string{"de", "fr", "us"}
	devices   = []string{"desktop", "mobile"}
)

// genEvents returns n seeded events over [t0, t0+span), in time order.
func genEvents(n int, span time.Duration, seed uint64) []tev {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]tev, n)
	for i := range out {
		e := tev{
			country: countries[rng.IntN(len(countries))],
			device:  devices[rng.IntN(len(devices))],
			t:       t0.UnixNano() + int64(i)*int64(span)/int64(n),
			user:    fmt.Sprintf("u%d", rng.IntN(700)),
			// A skewed URL distribution: url k with weight ~ 1/(k+1).
			url: fmt.Sprintf("/p/%d", int(float64(40)*rng.Float64()*rng.Float64()*rng.Float64())),
			lat: rng.ExpFloat64() * 100,
		}
		e.raw = fmt.Sprintf(`{"i":%d,"user":%q}`, i, e.user)
		out[i] = e
	}
	return out
}

// buildPanes runs a real window.Aggregator over evs and stores its flushed
// panes. It returns the committed checkpoint.
func buildPanes(tb testing.TB, spec sketchd.Stream, st *paneStore, evs []tev) sketchd.Checkpoint {
	tb.Helper()
	last := evs[len(evs)-1].t
	a, err := window.NewAggregator(spec, sketchd.Checkpoint{}, last, st, window.Options{Shards: 2})
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	const batchLen = 1000
	for lo := 0; lo < len(evs); lo += batchLen {
		var b window.Batch
		b.Now = last
		for i := lo; i < min(lo+batchLen, len(evs)); i++ {
			e := &evs[i]
			ev := sketchd.Event{
				Key:  sketchd.EncodeKey(e.country, e.device),
				Time: e.t,
				Pos:  uint64(i + 1),
				// AggregateNames order: latency, sample, urls, users.
				Values: []sketchd.Value{
					{Present: true, Num: e.lat},
					{Present: true, Bytes: []byte(e.raw)},
					{Present: true, Bytes: []byte(e.url)},
					{Present: true, Bytes: []byte(e.user)},
				},
			}
			b.Add(&ev)
		}
		b.Position = uint64(min(lo+batchLen, len(evs)))
		rej, err := a.Process(context.Background(), &b)
		if err != nil {
			tb.Fatal(err)
		}
		if len(rej) > 0 {
			tb.Fatalf("%d events rejected, first %+v", len(rej), rej[0])
		}
	}
	snap, err := a.Flush(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	st.Put(snap.Panes...)
	a.Committed(snap)
	return snap.Checkpoint
}

// fixture is a running API over real panes.
type fixture struct {
	h       http.Handler
	streams *fakeStreams
	store   *paneStore
	evs     []tev
	status  sketchd.StreamStatus
	reg     *prometheus.Registry
}

type fixtureOpt func(*Config)

const (
	fixtureEvents = 20_000
	fixtureSpan   = 2 * time.Hour
)

// Shared panes: building them once keeps the suite fast. Each fixture gets
// its own handler, registry and stream registry.
var (
	sharedOnce  sync.Once
	sharedStore *paneStore
	sharedEvs   []tev
	sharedCP    sketchd.Checkpoint
)

func newFixture(tb testing.TB, opts ...fixtureOpt) *fixture {
	tb.Helper()
	spec := testSpec(tb)
	sharedOnce.Do(func() {
		sharedStore = newPaneStore()
		sharedEvs = genEvents(fixtureEvents, fixtureSpan, 42)
		sharedCP = buildPanes(tb, spec, sharedStore, sharedEvs)
	})
	st := sketchd.StreamStatus{
		ID: 7, Spec: spec, Created: t0, State: "running",
		Watermark: sharedCP.Watermark, MaxEventTime: sharedCP.MaxEventTime,
		CommittedWatermark: sharedCP.Watermark, LastCommit: t0.Add(fixtureSpan),
		Counters: sharedCP.Counters,
	}
	f := &fixture{streams: newFakeStreams(st), store: sharedStore, evs: sharedEvs, status: st, reg: prometheus.NewRegistry()}
	f.mount(tb, newQuerier(tb, sharedStore, query.Options{}), opts...)
	return f
}

// newQuerier returns a querier over r that tb closes when it ends: Close
// stops the worker of the ahead jobs a question may have started.
func newQuerier(tb testing.TB, r query.PaneReader, opts query.Options) *query.Querier {
	tb.Helper()
	q := query.New(r, opts)
	tb.Cleanup(q.Close)
	return q
}

// mount builds f's handler over q with f's streams and registry, the
// clock at the end of the fixture's span, and opts.
func (f *fixture) mount(tb testing.TB, q Querier, opts ...fixtureOpt) {
	tb.Helper()
	cfg := Config{
		Streams:  f.streams,
		Querier:  q,
		Registry: f.reg,
		Now:      func() time.Time { return t0.Add(fixtureSpan) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	f.h = h
}

// response is a recorded response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(tb testing.TB) problem {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, r.body)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		tb.Fatalf("problem: %v: %s", err, r.body)
	}
	return p
}

func (f *fixture) do(tb testing.TB, method, target string, body io.Reader, hdr ...string) response {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), method, target, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func (f *fixture) get(tb testing.TB, target string, hdr ...string) response {
	tb.Helper()
	return f.do(tb, http.MethodGet, target, nil, hdr...)
}

// getJSON GETs target, wants 200 and decodes the body into v.
func (f *fixture) getJSON(tb testing.TB, target string, v any) {
	tb.Helper()
	r := f.get(tb, target)
	if r.status != http.StatusOK {
		tb.Fatalf("GET %s: status %d: %s", target, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("GET %s: %v: %s", target, err, r.body)
	}
}

// truth filters the fixture's events.
func (f *fixture) truth(from, to time.Time, keep func(*tev) bool) []*tev {
	var out []*tev
	for i := range f.evs {
		e := &f.evs[i]
		if e.t >= from.UnixNano() && e.t < to.UnixNano() && (keep == nil || keep(e)) {
			out = append(out, e)
		}
	}
	return out
}

func rangeQuery(from, to time.Time) string {
	return "from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
}

func distinctUsers(evs []*tev) int {
	m := map[string]bool{}
	for _, e := range evs {
		m[e.user] = true
	}
	return len(m)
}

func has(s []string, v string) bool { return slices.Contains(s, v) }

func join(parts ...string) string { return strings.Join(parts, "&") }
