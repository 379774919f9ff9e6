package query

import (
	"fmt"
	"testing"
	"time"
)

// wholePanes is the real store seen through the PaneReader interface only:
// its scans copy every slot of a pane (no ScanTierPaneSlot).
type wholePanes struct{ PaneReader }

// TestSlotScanEqualsWholePanes: a querier whose store copies only the slot
// of the aggregate it reads (store.DB's ScanTierPaneSlot) answers every
// aggregate of a four-aggregate live stream (hll, cms, tdigest, reservoir:
// slots 0-3) exactly as one reading whole panes, while the stream commits,
// with its caches on (a decoded open pane and a cached final one come from
// the one-slot copy) under -race with concurrent readers.
func TestSlotScanEqualsWholePanes(t *testing.T) {
	const seed = 20261205
	t.Logf("seed %d", seed)
	l := newLive(t, seed, 10)
	if _, ok := PaneReader(l.db).(slotScanner); !ok {
		t.Fatal("store.DB does not implement the one-slot scan: the test proves nothing")
	}
	if _, ok := PaneReader(wholePanes{l.db}).(slotScanner); ok {
		t.Fatal("the whole-pane reader implements the one-slot scan")
	}
	slot := New(l.db, Options{})
	whole := New(wholePanes{l.db}, Options{CacheBytes: -1, ResultEntries: -1, WindowCacheBytes: -1})
	m := int64(time.Minute)
	for range 15 {
		l.ingest(t)
	}
	for round := range 4 {
		l.ingest(t)
		to := l.now()
		for _, qc := range []Query{
			{From: to - 20*m, To: to, Step: m, GroupBy: []string{"country"}},
			{From: to - 20*m, To: to, Step: 5 * m},
		} {
			for _, agg := range []string{"users", "urls", "latency", "sample"} {
				qu := qc
				qu.Aggregate = agg
				at := fmt.Sprintf("round %d step %v %s", round, time.Duration(qu.Step), agg)
				done := make(chan error, 2)
				for range 2 {
					go func() {
						res, err := slot.QueryShared(t.Context(), l.target, qu)
						if err == nil {
							readAll(res)
						}
						done <- err
					}()
				}
				for range 2 {
					if err := <-done; err != nil {
						t.Fatalf("%s: %v", at, err)
					}
				}
				got, err := slot.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				want, err := whole.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				if want.Panes == 0 {
					t.Fatalf("%s: no pane read", at)
				}
				sameResult(t, at, got, want)
			}
		}
	}
}
