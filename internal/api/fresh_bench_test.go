package api

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
	"github.com/sketchd/sketchd/loadtest/querymix"
)

// dashLive is the load runner's dashboard phase in process: the pv
// stream's four aggregates (panetest.LoadShape: users hll, urls cms,
// latency tdigest, sample reservoir, at their defaults) over 20 countries
// × 3 devices (60 keys), events drawn as internal/gen draws them (Zipf
// 1.1 countries, users of 100,000 and urls of 5,000; uniform devices;
// log-normal latencies), in a real Badger store, fed by a real
// window.Aggregator that commits every second of event time at the
// runner's live rate, and served through the real router with the clock at
// the last commit.
type dashLive struct {
	db     *store.DB
	q      *query.Querier
	agg    *window.Aggregator
	h      http.Handler
	fs     *fakeStreams
	status sketchd.StreamStatus
	keys   []string
	rng    *rand.Rand
	now    time.Time // the event time ingested up to
	pos    uint64
	urls   *rand.Zipf
	users  *rand.Zipf
	cntry  *rand.Zipf
}

var (
	dashCountries = querymix.DashboardOf("pv").Values
	dashDevices   = []string{"mobile", "desktop", "tablet"}
)

// newDashLive builds the stream as the runner has it when its dashboard
// phase starts: an hour and some minutes of the accuracy backfill's
// density (500,000 events over 25 h: 333 a minute), then three minutes at
// the live rate (the vegeta and k6 phases before the dashboard).
func newDashLive(tb testing.TB, seed uint64) *dashLive {
	tb.Helper()
	tb.Logf("seed %d", seed)
	ctx := context.Background()
	o := store.DefaultOptions()
	o.GCInterval, o.RetentionInterval = -1, -1
	db, err := store.Open(tb.TempDir(), nil, nil, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	spec := panetest.LoadShape("pv", true)
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		tb.Fatal(err)
	}
	l := &dashLive{db: db, rng: rand.New(rand.NewPCG(seed, 14))}
	l.urls = rand.NewZipf(l.rng, 1.1, 1, 4999)
	l.users = rand.NewZipf(l.rng, 1.1, 1, 99_999)
	l.cntry = rand.NewZipf(l.rng, 1.1, 1, uint64(len(dashCountries)-1))
	l.now = time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	l.agg, err = window.NewAggregator(spec, sketchd.Checkpoint{}, l.now.UnixNano(), paneLoaderOf{db, info.ID}, window.Options{Shards: 2})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.agg.Close)
	for _, c := range dashCountries {
		for _, d := range dashDevices {
			l.keys = append(l.keys, sketchd.EncodeKey(c, d))
		}
	}
	l.status = sketchd.StreamStatus{ID: info.ID, Spec: spec, Created: l.now, State: "running"}
	l.fs = newFakeStreams(l.status)
	l.q = newQuerier(tb, db, query.Options{})
	h, err := New(Config{
		Streams: l.fs,
		Querier: l.q,
		Now:     func() time.Time { return l.now },
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	l.h = h
	for range 64 {
		l.ingest(tb, time.Minute, 333)
	}
	for range 180 {
		l.ingest(tb, time.Second, dashRate)
	}
	return l
}

// dashRate is the runner's live ingest rate, events per second.
const dashRate = 2000

// ingest applies n events spread over the next d of event time and
// commits them, moving the stream's committed watermark and last commit.
func (l *dashLive) ingest(tb testing.TB, d time.Duration, n int) {
	tb.Helper()
	ctx := context.Background()
	var b window.Batch
	for i := range n {
		l.pos++
		key := l.keys[int(l.cntry.Uint64())*len(dashDevices)+l.rng.IntN(len(dashDevices))]
		at := l.now.Add(time.Duration(i) * d / time.Duration(n))
		user := fmt.Appendf(nil, "u%d", l.users.Uint64())
		url := fmt.Appendf(nil, "/p/%d", l.urls.Uint64())
		lat := math.Round(math.Exp(4+0.8*l.rng.NormFloat64())*100) / 100
		b.Add(&sketchd.Event{Key: key, Time: at.UnixNano(), Pos: l.pos, Values: []sketchd.Value{
			{Present: true, Num: lat}, // AggregateNames order: latency, sample, urls, users
			{Present: true, Bytes: fmt.Appendf(nil, `{"user_id":%q,"url":%q,"latency_ms":%.1f}`, user, url, lat)},
			{Present: true, Bytes: url},
			{Present: true, Bytes: user},
		}})
	}
	l.now = l.now.Add(d)
	b.Now, b.Position = l.now.UnixNano(), l.pos
	if _, err := l.agg.Process(ctx, &b); err != nil {
		tb.Fatal(err)
	}
	snap, err := l.agg.Flush(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.db.Commit(ctx, l.status.ID, sketchd.Flush{Panes: snap.Panes, Checkpoint: snap.Checkpoint}); err != nil {
		tb.Fatal(err)
	}
	l.agg.Committed(snap)
	st := &l.status
	st.Watermark, st.CommittedWatermark = snap.Checkpoint.Watermark, snap.Checkpoint.Watermark
	st.MaxEventTime, st.Counters = snap.Checkpoint.MaxEventTime, snap.Checkpoint.Counters
	st.LastCommit = l.now
	l.fs.mu.Lock()
	l.fs.streams[st.Spec.Name] = *st
	l.fs.mu.Unlock()
}

// ask GETs path through the router and wants 200.
func (l *dashLive) ask(tb testing.TB, path string) []byte {
	tb.Helper()
	req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

type paneLoaderOf struct {
	db *store.DB
	id uint32
}

func (p paneLoaderOf) Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	return p.db.Pane(ctx, p.id, key, start)
}

// BenchmarkFreshPanel is the CPU and allocations of one fresh answer of
// each panel of the load runner's dashboard (querymix.DashboardOf: 10
// panels over the last hour, where=country={v}), the first request of its
// question after a commit. An op is one answer: the panel for the next of
// the 20 countries, after a commit of one more second of events at 2,000
// events/s before each round of the 20 (not timed). So every answer is of
// a question whose cached answer is one commit old, as at load (100
// requests a second, each of the 200 questions about every 2 s), and what
// a commit costs once for every question (the open span's keys) is shared
// by the panel's 20 questions; the final windows are cached from the
// earlier rounds.
//
//	nice -n 19 go test ./internal/api -run '^$' -bench FreshPanel -benchmem -benchtime 400x -count 6
func BenchmarkFreshPanel(b *testing.B) {
	l := newDashLive(b, 20261206)
	d := querymix.DashboardOf("pv")
	for _, v := range d.Values { // a dashboard already open
		for _, p := range d.Paths(v) {
			l.ask(b, p)
		}
	}
	for _, p := range d.Panels {
		b.Run(p.Name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v := d.Values[i%len(d.Values)]
				if i%len(d.Values) == 0 {
					b.StopTimer()
					l.ingest(b, time.Second, dashRate)
					b.StartTimer()
				}
				i++
				pprof.Do(b.Context(), pprof.Labels("panel", p.Name), func(context.Context) {
					l.ask(b, strings.ReplaceAll(p.Path, "{v}", v))
				})
			}
		})
	}
	// The whole dashboard, as the runner's users ask it: after each commit
	// every question once, the panels of one value together (so they share
	// the open tails of its keys). An op is one answer.
	b.Run("dashboard", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		n := len(d.Values) * len(d.Panels)
		for b.Loop() {
			if i%n == 0 {
				b.StopTimer()
				l.ingest(b, time.Second, dashRate)
				b.StartTimer()
			}
			v, p := d.Values[i%n/len(d.Panels)], d.Panels[i%len(d.Panels)]
			i++
			pprof.Do(b.Context(), pprof.Labels("panel", "dashboard/"+p.Name), func(context.Context) {
				l.ask(b, strings.ReplaceAll(p.Path, "{v}", v))
			})
		}
	})
}
