package window

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
)

// gateLoader is the in-memory store with pane reads held until released:
// a shard that needs a pane it does not hold (every new pane) waits, its
// queue fills, and Process blocks: backpressure, made deterministic.
type gateLoader struct {
	*memStore
	release chan struct{}
}

func (g gateLoader) Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	select {
	case <-g.release:
	case <-ctx.Done():
		return sketchd.PaneRecord{}, false, ctx.Err()
	}
	return g.memStore.Pane(ctx, key, start)
}

// TestStatsWhileProcessBlocks: Stats does not wait for a Process blocked on
// a full shard queue, and reports what that Process classified.
func TestStatsWhileProcessBlocks(t *testing.T) {
	spec := panetest.Spec(t)
	gl := gateLoader{newMemStore(), make(chan struct{})}
	a, err := NewAggregator(spec, sketchd.Checkpoint{}, t0.UnixNano(), gl, Options{Shards: 1, QueueLen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	release := sync.OnceFunc(func() { close(gl.release) })
	defer release() // before Close, which waits for the blocked Process
	// Batch 1 holds the shard in its pane load, batch 2 fills the queue,
	// batch 3 blocks in Process.
	processed := make(chan error, 1)
	go func() {
		for i := range 3 {
			var b Batch
			b.Now = t0.UnixNano()
			e := panetest.Event("k"+string(rune('a'+i)), t0.Add(time.Duration(i)*time.Minute), 0, "u")
			b.Add(&e)
			if _, err := a.Process(context.Background(), &b); err != nil {
				processed <- err
				return
			}
		}
		processed <- nil
	}()
	deadline := time.After(10 * time.Second)
	for {
		// Stats must answer however long Process blocks.
		st := statsWithin(t, a, 5*time.Second)
		if st.Counters.OnTime == 3 {
			break
		}
		select {
		case err := <-processed:
			t.Fatalf("all three batches processed (err %v) while the shard was held: the test did not block Process", err)
		case <-deadline:
			t.Fatalf("Stats reports %d events on time, want 3 while the third Process blocks", st.Counters.OnTime)
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case err := <-processed:
		t.Fatalf("Process returned (err %v) while the shard queue was full", err)
	default:
	}
	release()
	if err := <-processed; err != nil {
		t.Fatal(err)
	}
	if wm, want := a.Stats().Watermark, t0.Add(2*time.Minute-10*time.Second).UnixNano(); wm != want {
		t.Errorf("watermark %d, want %d", wm, want)
	}
}

// statsWithin returns a.Stats(), failing the test if it blocks for d.
func statsWithin(t *testing.T, a *Aggregator, d time.Duration) Stats {
	t.Helper()
	ch := make(chan Stats, 1)
	go func() { ch <- a.Stats() }()
	select {
	case st := <-ch:
		return st
	case <-time.After(d):
		t.Fatalf("Stats blocked for %s: it waits for the aggregator's lock", d)
		return Stats{}
	}
}
