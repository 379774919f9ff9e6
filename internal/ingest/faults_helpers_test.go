package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// faultStore is the real store with writes that fail on command: the
// boundary where a full disk or a failing Badger shows itself to ingest.
type faultStore struct {
	*store.DB
	fail     atomic.Pointer[error] // non-nil: Commit returns it, writing nothing
	attempts atomic.Uint64
	failed   atomic.Uint64
}

func (f *faultStore) Commit(ctx context.Context, id uint32, fl sketchd.Flush) error {
	f.attempts.Add(1)
	if e := f.fail.Load(); e != nil {
		f.failed.Add(1)
		return *e
	}
	return f.DB.Commit(ctx, id, fl)
}

func (f *faultStore) breakWrites(err error) { f.fail.Store(&err) }
func (f *faultStore) healWrites()           { f.fail.Store(nil) }

// errDiskFull is what the store returns when the disk is full.
var errDiskFull = fmt.Errorf("commit: %w: write /data/000123.vlog: no space left on device", store.ErrUnavailable)

// metricValue returns the value of the metric name with the given label
// values (in the order of its labels) from the manager's collector; ok is
// false when it is absent.
func metricValue(tb testing.TB, m *Manager, name string, labels ...string) (float64, bool) {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m.Collector()); err != nil {
		tb.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if !labelsMatch(mt.GetLabel(), labels) {
				continue
			}
			switch {
			case mt.GetCounter() != nil:
				return mt.GetCounter().GetValue(), true
			case mt.GetGauge() != nil:
				return mt.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func labelsMatch(got []*dto.LabelPair, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	// The registry sorts label pairs by name; compare the values as sets.
	g := make([]string, len(got))
	for i, l := range got {
		g[i] = l.GetValue()
	}
	w := slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func mustMetric(tb testing.TB, m *Manager, name string, labels ...string) float64 {
	tb.Helper()
	v, ok := metricValue(tb, m, name, labels...)
	if !ok {
		tb.Fatalf("metric %s%v absent", name, labels)
	}
	return v
}

// runnerOf returns the running runner of a stream.
func runnerOf(tb testing.TB, m *Manager, name string) *runner {
	tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runners[name]
	if r == nil {
		tb.Fatalf("stream %q is not running", name)
	}
	return r
}

// consumerInfo returns the stream's JetStream consumer state. A consumer
// reset deletes and recreates the consumer: it retries while it is absent.
func consumerInfo(tb testing.TB, js jetstream.JetStream, spec sketchd.Stream) *jetstream.ConsumerInfo {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := durableOf(ctx, js, spec)
		var ci *jetstream.ConsumerInfo
		if err == nil {
			ci, err = c.Info(ctx)
		}
		cancel()
		if err == nil {
			return ci
		}
		if time.Now().After(deadline) {
			tb.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// applied is the number of events the stream applied to panes.
func applied(st sketchd.StreamStatus) uint64 { return st.Counters.OnTime + st.Counters.Late }

// checkPanes compares the exact per-country counts in the store with truth
// and returns the total.
func checkPanes(tb testing.TB, db *store.DB, id uint32, truth map[string]uint64) uint64 {
	tb.Helper()
	per, total := paneTotals(tb, db, id)
	var want uint64
	for c, n := range truth {
		want += n
		if per[c] != n {
			tb.Errorf("country %s: %d events in panes, want %d", c, per[c], n)
		}
	}
	for c := range per {
		if _, ok := truth[c]; !ok {
			tb.Errorf("unexpected key %q in panes", c)
		}
	}
	if total != want {
		tb.Errorf("%d events in panes, want %d (lost %d, doubled %d)", total, want, sub0(want, total), sub0(total, want))
	}
	return total
}

func sub0(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

// queryEvents asks the querier for the exact event count of the whole
// stream, as the API would.
func queryEvents(ctx context.Context, q *query.Querier, st sketchd.StreamStatus) (uint64, error) {
	res, err := q.Query(ctx, query.Target{ID: st.ID, Spec: st.Spec, Watermark: st.CommittedWatermark},
		query.Query{Aggregate: "users", From: base.Add(-24 * time.Hour).UnixNano(), To: base.Add(24 * time.Hour).UnixNano()})
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, g := range res.Groups {
		for _, w := range g.Windows {
			n += w.Events
		}
	}
	return n, nil
}

// isUnavailable reports whether err says "not ready".
func isUnavailable(err error) bool { return err != nil && errors.Is(err, sketchd.ErrUnavailable) }

func truthOf(evs []event) map[string]uint64 {
	t := map[string]uint64{}
	for _, e := range evs {
		t[e.Country]++
	}
	return t
}

func joinLines(evs []event) []byte {
	var b strings.Builder
	for _, e := range evs {
		b.Write(e.json())
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// durableOf returns the stream's durable consumer, whatever the instance
// id in its name (sketchd_<instance>_<stream>).
func durableOf(ctx context.Context, js jetstream.JetStream, spec sketchd.Stream) (jetstream.Consumer, error) {
	s, err := js.Stream(ctx, spec.JetStreamStream)
	if err != nil {
		return nil, err
	}
	names := s.ConsumerNames(ctx)
	for n := range names.Name() {
		if strings.HasPrefix(n, "sketchd_") && strings.HasSuffix(n, "_"+spec.Name) && n != "sketchd_"+spec.Name {
			return s.Consumer(ctx, n)
		}
	}
	if err := names.Err(); err != nil {
		return nil, err
	}
	return nil, jetstream.ErrConsumerNotFound
}
