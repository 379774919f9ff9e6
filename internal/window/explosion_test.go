package window

import (
	"context"
	"flag"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
)

var explosionKeys = flag.Int("explosion.keys", 100_000, "distinct keys in TestKeyExplosionHeap (1000000 for the long run)")

// sinkStore is a store that keeps nothing: every pane is new, commits are
// counted and dropped. It lets the heap measure the aggregator alone.
type sinkStore struct {
	events atomic.Uint64
	panes  atomic.Uint64
}

func (*sinkStore) Pane(context.Context, string, int64) (sketchd.PaneRecord, bool, error) {
	return sketchd.PaneRecord{}, false, nil
}

func (s *sinkStore) commit(a *Aggregator, snap *sketchd.Flush) {
	for _, r := range snap.Panes {
		s.events.Add(r.Events)
		s.panes.Add(1)
	}
	a.Committed(snap)
}

// heap returns the live heap (HeapAlloc) and the heap spans in use
// (HeapInuse, which also counts the free space of partly used spans) after
// a full collection.
func heap() (alloc, inuse int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.HeapInuse)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// explode feeds n events, each for a distinct key, spread over 10 panes
// that do not become final, in batches of 1000, and flushes and commits
// every 10 batches as ingest does. It checks the open-pane bound at every
// flush and returns the largest open-pane count seen.
func explode(tb testing.TB, a *Aggregator, st *sinkStore, n, bound int) int64 {
	tb.Helper()
	ctx := context.Background()
	var b Batch
	var maxOpen int64
	check := func() {
		snap, err := a.Flush(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		st.commit(a, snap)
		open := a.Stats().OpenPanes
		maxOpen = max(maxOpen, open)
		if open > int64(bound) {
			tb.Fatalf("%d panes open after a flush, bound %d", open, bound)
		}
	}
	for i := range n {
		e := panetest.Event(sketchd.EncodeKey("k"+strconv.Itoa(i), "d"), t0.Add(time.Duration(i%10)*time.Minute), 0, strconv.Itoa(i))
		b.Add(&e)
		if b.Len() == 1000 || i == n-1 {
			b.Now = t0.UnixNano()
			if _, err := a.Process(ctx, &b); err != nil {
				tb.Fatal(err)
			}
			b.Reset()
			if (i/1000)%10 == 9 || i == n-1 {
				check()
			}
		}
	}
	return maxOpen
}

// TestKeyExplosionHeap: a publisher that sends a huge number of distinct
// keys cannot exhaust memory. The open-pane cap holds at every flush, the
// pressure shows in EvictedEarly, every event reaches a commit, and the
// heap after n distinct keys stays within a small multiple of the heap of
// cap panes measured in the same run (live heap 2×, heap spans in use 3×:
// the panes that survive eviction are scattered over spans allocated
// during the whole run), where without the cap it would grow with n.
//
//	go test -race ./internal/window -run TestKeyExplosionHeap -v
//	go test ./internal/window -run TestKeyExplosionHeap -v -explosion.keys=1000000
func TestKeyExplosionHeap(t *testing.T) {
	n := *explosionKeys
	capPanes := max(1000, n/10)
	if n >= 1_000_000 {
		capPanes = n / 100 // the long run: a 100× explosion over the cap
	}
	spec := panetest.Spec(t)
	spec.AllowedLateness = sketchd.Duration(24 * time.Hour) // nothing becomes final
	opts := Options{Shards: 2, QueueLen: 4, MaxOpenPanes: capPanes}
	// A shard evicts after each batch it applies; a batch of 1000 events
	// may all land on one shard before its eviction runs.
	bound := capPanes + 1000

	// Calibration: capPanes distinct keys, no eviction.
	baseAlloc, baseInuse := heap()
	cal := &sinkStore{}
	ac, err := NewAggregator(spec, sketchd.Checkpoint{}, t0.UnixNano(), cal, Options{Shards: 2, QueueLen: 4, MaxOpenPanes: 4 * capPanes})
	if err != nil {
		t.Fatal(err)
	}
	explode(t, ac, cal, capPanes, 4*capPanes)
	calAlloc, calInuse := heap()
	calAlloc, calInuse = calAlloc-baseAlloc, calInuse-baseInuse
	if ac.Stats().EvictedEarly != 0 {
		t.Fatal("calibration evicted panes")
	}
	ac.Close()
	runtime.KeepAlive(ac)

	// The explosion: n distinct keys through the cap.
	baseAlloc, baseInuse = heap()
	st := &sinkStore{}
	a, err := NewAggregator(spec, sketchd.Checkpoint{}, t0.UnixNano(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	maxOpen := explode(t, a, st, n, bound)
	gotAlloc, gotInuse := heap()
	gotAlloc, gotInuse = gotAlloc-baseAlloc, gotInuse-baseInuse
	stats := a.Stats()
	runtime.KeepAlive(a)

	t.Logf("keys=%d cap=%d: max open panes at a flush %d, open at the end %d, evicted early %d", n, capPanes, maxOpen, stats.OpenPanes, stats.EvictedEarly)
	t.Logf("heap growth with %d keys: live %.1f MiB, in use %.1f MiB; with %d panes and no eviction: live %.1f MiB (%.0f B/pane), in use %.1f MiB",
		n, mib(gotAlloc), mib(gotInuse), capPanes, mib(calAlloc), float64(calAlloc)/float64(capPanes), mib(calInuse))
	if got := st.events.Load(); got != uint64(n) {
		t.Errorf("%d events committed, want %d", got, n)
	}
	if got := st.panes.Load(); got != uint64(n) {
		t.Errorf("%d pane records committed, want %d (one per key)", got, n)
	}
	if stats.EvictedEarly < uint64(n-bound) {
		t.Errorf("evicted early %d, want at least %d", stats.EvictedEarly, n-bound)
	}
	if limit := 2*calAlloc + 4<<20; gotAlloc > limit {
		t.Errorf("live heap grew %.1f MiB with %d distinct keys, bound %.1f MiB (2 × the %d-pane cap's %.1f MiB + 4 MiB)",
			mib(gotAlloc), n, mib(limit), capPanes, mib(calAlloc))
	}
	if limit := 3*calInuse + 8<<20; gotInuse > limit {
		t.Errorf("heap in use grew %.1f MiB with %d distinct keys, bound %.1f MiB (3 × the %d-pane cap's %.1f MiB + 8 MiB)",
			mib(gotInuse), n, mib(limit), capPanes, mib(calInuse))
	}
}

// TestEvictionReloadDuringFlush: with a tiny open-pane cap, panes are
// evicted and reloaded all the time while another goroutine flushes and
// commits, as ingest's committer does. A pane evicted just before a flush
// barrier and touched again right after it (while the flush waits for the
// other shards) used to be reloaded from the store, which did not have it
// yet: its earlier events were lost.
//
//	go test -race ./internal/window -run TestEvictionReloadDuringFlush -v
func TestEvictionReloadDuringFlush(t *testing.T) {
	spec := panetest.Spec(t)
	spec.AllowedLateness = sketchd.Duration(24 * time.Hour)
	st := newMemStore()
	a := newAgg(t, spec, sketchd.Checkpoint{}, st, Options{Shards: 2, MaxOpenPanes: 4})
	want := map[paneKey]uint64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	flushes := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := a.Flush(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			st.commit(s, false)
			a.Committed(s)
			flushes++
		}
	}()
	for i := range 6000 {
		k := sketchd.EncodeKey("DE", strconv.Itoa(i%13))
		at := t0.Add(time.Duration(i%3) * time.Minute)
		process(t, a, t0, 0, panetest.Event(k, at, 0, "u"))
		want[paneKey{k, sketchd.PaneStart(at.UnixNano(), int64(time.Minute))}]++
	}
	close(stop)
	wg.Wait()
	flush(t, a, st)
	if a.Stats().EvictedEarly == 0 {
		t.Fatal("nothing was evicted")
	}
	var lost, doubled uint64
	stored := st.panes()
	for k, n := range want {
		got := stored[k].Events
		lost += n - min(n, got)
		doubled += got - min(n, got)
	}
	t.Logf("flushes=%d evicted early=%d lost=%d doubled=%d", flushes, a.Stats().EvictedEarly, lost, doubled)
	if lost != 0 || doubled != 0 {
		t.Fatalf("lost %d, doubled %d events", lost, doubled)
	}
}
