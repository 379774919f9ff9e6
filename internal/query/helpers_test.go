package query

import (
	"context"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/internal/window"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// feeder stores real panes: a window.Aggregator whose flushes it commits to
// an in-memory pane store, which the queries of a test read.
type feeder struct {
	agg *window.Aggregator
	st  *panetest.Store
}

func newFeeder(tb testing.TB, spec sketchd.Stream) *feeder {
	tb.Helper()
	st := panetest.NewStore()
	a, err := window.NewAggregator(spec, sketchd.Checkpoint{}, t0.UnixNano(), st, window.Options{Shards: 2})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	return &feeder{agg: a, st: st}
}

// process applies evs as one batch at processing time now.
func (f *feeder) process(tb testing.TB, now time.Time, pos uint64, evs ...sketchd.Event) {
	tb.Helper()
	var b window.Batch
	b.Now, b.Position = now.UnixNano(), pos
	for i := range evs {
		b.Add(&evs[i])
	}
	if _, err := f.agg.Process(context.Background(), &b); err != nil {
		tb.Fatal(err)
	}
}

// flush stores the panes changed since the last flush.
func (f *feeder) flush(tb testing.TB) {
	tb.Helper()
	s, err := f.agg.Flush(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	f.st.Put(s.Panes...)
	f.agg.Committed(s)
}

// watermark is the aggregator's watermark: after a flush, the committed one.
func (f *feeder) watermark() int64 { return f.agg.Stats().Watermark }
