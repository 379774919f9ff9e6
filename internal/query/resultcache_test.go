package query

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/sketch"
)

// TestQueryResultCache: results are cached per Target.LastCommit (a stale
// one gets the old result even after new panes are stored, which is
// how the test sees a cache hit), a new one recomputes, equivalent
// filters share an entry, every caller gets its own copy of the sketches,
// and concurrent identical queries all get the right result.
func TestQueryResultCache(t *testing.T) {
	spec := panetest.Spec(t)
	f := newFeeder(t, spec)
	var pos uint64
	feed := func(from, n int) {
		for i := from; i < from+n; i++ {
			pos++
			at := t0.Add(time.Duration(i) * time.Second)
			f.process(t, at, pos, panetest.Event(sketchd.EncodeKey([]string{"DE", "FR", "US"}[i%3], "web"), at, pos, fmt.Sprint("u", i)))
		}
		f.flush(t)
	}
	feed(0, 600)
	q := New(f.st, Options{})
	ctx := context.Background()
	tgt := Target{ID: 1, Spec: spec, Watermark: f.watermark(), LastCommit: 1}
	qu := Query{Aggregate: "users", From: t0.UnixNano(), To: t0.Add(time.Hour).UnixNano(),
		Where: map[string][]string{"country": {"DE", "FR"}}}
	events := func(res *Result) uint64 {
		var n uint64
		for _, g := range res.Groups {
			for _, w := range g.Windows {
				n += w.Events
			}
		}
		return n
	}

	first, err := q.Query(ctx, tgt, qu)
	if err != nil {
		t.Fatal(err)
	}
	if got := events(first); got != 400 {
		t.Fatalf("%d events, want 400", got)
	}
	// The caller owns its copy: changing it does not change later results.
	extra, _ := sketch.NewHLL(14)
	for i := range 1000 {
		extra.Insert(fmt.Appendf(nil, "x%d", i))
	}
	before := first.Groups[0].Windows[0].Sketch.(*sketch.HLL).Estimate().Estimate
	if err := first.Groups[0].Windows[0].Sketch.Merge(extra); err != nil {
		t.Fatal(err)
	}

	feed(600, 600) // more events in the same hour
	reordered := qu
	reordered.Where = map[string][]string{"country": {"FR", "DE", "FR"}}
	stale, err := q.Query(ctx, tgt, reordered)
	if err != nil {
		t.Fatal(err)
	}
	if got := events(stale); got != 400 {
		t.Fatalf("same last commit: %d events, want the cached 400", got)
	}
	if got := stale.Groups[0].Windows[0].Sketch.(*sketch.HLL).Estimate().Estimate; got != before {
		t.Fatalf("cached sketch changed by a caller: %v, want %v", got, before)
	}

	tgt.LastCommit, tgt.Watermark = 2, f.watermark()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			res, err := q.Query(ctx, tgt, qu)
			if err != nil {
				errs <- err
				return
			}
			if got := events(res); got != 800 {
				errs <- fmt.Errorf("new last commit: %d events, want 800", got)
				return
			}
			// Each caller may use its sketches as it likes.
			res.Groups[0].Windows[0].Sketch.(*sketch.HLL).Estimate()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// LastCommit 0 never caches.
	tgt.LastCommit = 0
	feed(1200, 300)
	tgt.Watermark = f.watermark()
	res, err := q.Query(ctx, tgt, qu)
	if err != nil {
		t.Fatal(err)
	}
	if got := events(res); got != 1000 {
		t.Fatalf("last commit 0: %d events, want 1000", got)
	}
}
