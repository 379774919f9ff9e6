package query_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// scanCounter is the real store, counting the scans that reach it.
type scanCounter struct {
	query.PaneReader
	scans atomic.Int64
}

func (s *scanCounter) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	s.scans.Add(1)
	return s.PaneReader.ScanPanes(ctx, id, keys, from, to, fn)
}

// TestCostHook: a query's computation reports its cost to the context's
// hook before it reads a pane — its reads are the keys × pane slots it
// scans (30 keys × 60 one-minute slots of one hour) and its bytes
// cost.bytes — an error from the hook refuses the query before any scan
// and comes back as it is, and an answer from the result cache calls no
// hook.
func TestCostHook(t *testing.T) {
	db, tgt, hour := heavyStore(t, 10, 3)
	rd := &scanCounter{PaneReader: db}
	q := query.New(rd, query.Options{})
	qu := query.Query{Aggregate: "users", From: hour, To: hour + int64(time.Hour), GroupBy: []string{"country"}}

	errNo := errors.New("not admitted")
	refuse := query.WithCostHook(t.Context(), func(context.Context, query.Cost) error { return errNo })
	if _, err := q.Query(refuse, tgt, qu); !errors.Is(err, errNo) {
		t.Fatalf("refused by the hook: %v, want its error", err)
	}
	if n := rd.scans.Load(); n != 0 {
		t.Fatalf("%d scans before the hook refused, want 0", n)
	}

	var costs []query.Cost
	admit := query.WithCostHook(t.Context(), func(_ context.Context, c query.Cost) error {
		if rd.scans.Load() != 0 {
			t.Error("the hook was called after a scan")
		}
		costs = append(costs, c)
		return nil
	})
	if _, err := q.Query(admit, tgt, qu); err != nil {
		t.Fatal(err)
	}
	if len(costs) != 1 || costs[0].Reads != 30*60 || costs[0].Bytes <= 0 {
		t.Fatalf("costs %+v, want one with 1800 reads (30 keys × 60 slots) and some bytes", costs)
	}
	if got, want := costs[0].Units(), costs[0].Reads+costs[0].Bytes/1024; got != want {
		t.Errorf("units %d, want reads + KiB = %d", got, want)
	}
	if _, err := q.Query(admit, tgt, qu); err != nil {
		t.Fatal(err)
	}
	if len(costs) != 1 {
		t.Errorf("a cached answer called the hook: %+v", costs)
	}
}

// TestCostStopsAtThePaneHorizon: a range that runs past the newest pane
// the store can hold (the last commit plus the stream's max_future, a
// pane more) costs nothing past it: the last window of a series anchored
// at a moving from ends up to a step after now, and its future slots were
// counted for every key (a "last 30 days by day" refresh: 86,460 reads,
// the heavy lane at every commit).
func TestCostStopsAtThePaneHorizon(t *testing.T) {
	db, tgt, hour := heavyStore(t, 10, 3)
	tgt.LastCommit = hour + int64(time.Hour) // a time now, not a stamp
	tgt.Watermark = tgt.LastCommit
	q := query.New(db, query.Options{})
	var costs []query.Cost
	admit := query.WithCostHook(t.Context(), func(_ context.Context, c query.Cost) error {
		costs = append(costs, c)
		return nil
	})
	day := int64(24 * time.Hour)
	if _, err := q.Query(admit, tgt, query.Query{Aggregate: "users", From: hour, To: hour + day}); err != nil {
		t.Fatal(err)
	}
	g, future := int64(tgt.Spec.Granularity), int64(tgt.Spec.MaxFuture)
	horizon := tgt.LastCommit + future + g // tgt.LastCommit is on a pane boundary
	want, got := 30*(horizon-hour)/g, int64(0)
	for _, c := range costs { // the edge window's final part apart from the rest
		got += c.Reads
	}
	if got != want {
		t.Fatalf("costs %+v: %d reads, want %d (30 keys × the slots to the horizon, not the %d to the range's end)", costs, got, want, 30*day/g)
	}
}
