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
