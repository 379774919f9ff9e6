package ingest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/heapsize"
	"github.com/sketchd/sketchd/internal/window"
)

var explosionKeys = flag.Int("explosion.keys", 10_000, "distinct keys in TestKeyExplosion (1000000 for the long run)")

// TestKeyExplosion publishes events that each carry a new key through the
// whole path (JetStream, decoder, aggregator, Badger). The open-pane cap
// holds, the pressure is visible in the status and the metrics, every
// event is stored exactly once, and the Go heap stays within a bound set
// by the cap (panes) plus the store's budget, not by the number of keys.
// Set SKETCHD_EXPLOSION_HEAPPROFILE=file to write a heap profile at the
// end.
//
//	go test -race ./internal/ingest -run TestKeyExplosion -v
//	go test ./internal/ingest -run TestKeyExplosion -v -explosion.keys=1000000 -timeout 30m
func TestKeyExplosion(t *testing.T) {
	n := *explosionKeys
	capPanes := max(1000, n/10)
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(t, t.TempDir())
	spec := pageviews("keys", true)
	ctx := context.Background()
	// One shard, so that the bound is exact: a shard evicts after each
	// batch it applies.
	m := newManager(t, nc, db, Options{FlushInterval: 200 * time.Millisecond,
		Window: window.Options{MaxOpenPanes: capPanes, Shards: 1}})

	// Every event a new key, 100 events per message, all within a few
	// panes (nothing becomes final on its own).
	msgs := make([][]byte, 0, n/100+1)
	for i := 0; i < n; i += 100 {
		var b []byte
		for j := i; j < min(i+100, n); j++ {
			e := event{TS: base.Add(time.Duration(j) * time.Microsecond).UnixMilli(), Country: fmt.Sprintf("key-%07d", j),
				User: fmt.Sprintf("u%d", j%1000), URL: "/", MS: float64(j % 100)}
			b = append(append(b, e.json()...), '\n')
		}
		msgs = append(msgs, b)
	}
	heapBefore := heapsize.Live()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	if err := publishAsync(js, spec.Subject, msgs, 0, len(msgs)); err != nil {
		t.Fatal(err)
	}
	var maxOpen int64
	waitFor(t, time.Duration(max(60, n/2000))*time.Second, "every key stored", func() (bool, string) {
		st := mustStatus(t, m, spec.Name)
		maxOpen = max(maxOpen, st.OpenPanes)
		ci := consumerInfo(t, js, spec)
		return ci.AckFloor.Stream == uint64(len(msgs)) && ci.NumAckPending == 0,
			fmt.Sprintf("applied %d, open panes %d, ack floor %d of %d", applied(st), st.OpenPanes, ci.AckFloor.Stream, len(msgs))
	})
	heapAfter := heapsize.Live()
	if path := os.Getenv("SKETCHD_EXPLOSION_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	st := mustStatus(t, m, spec.Name)

	// The shard evicts after every batch it applies, and a batch carries
	// up to maxBatchEvents events plus one message (100 here).
	bound := int64(capPanes + maxBatchEvents + 100)
	if maxOpen > bound || st.OpenPanes > bound {
		t.Errorf("open panes reached %d (now %d), bound: cap %d + one batch %d", maxOpen, st.OpenPanes, capPanes, maxBatchEvents+100)
	}
	if st.EvictedEarly < uint64(n)-uint64(bound) {
		t.Errorf("evicted early %d, want at least %d", st.EvictedEarly, uint64(n)-uint64(bound))
	}
	if v := mustMetric(t, m, "sketchd_open_panes", spec.Name); int64(v) != st.OpenPanes {
		t.Errorf("sketchd_open_panes = %v, status says %d", v, st.OpenPanes)
	}
	if v := mustMetric(t, m, "sketchd_panes_evicted_early_total", spec.Name); uint64(v) != st.EvictedEarly {
		t.Errorf("sketchd_panes_evicted_early_total = %v, status says %d", v, st.EvictedEarly)
	}
	per, total := paneTotals(t, db, st.ID)
	if len(per) != n || total != uint64(n) || applied(st) != uint64(n) {
		t.Errorf("%d keys and %d events stored, %d applied; want %d of each", len(per), total, applied(st), n)
	}
	// The bound: the cap's panes (2.5 KiB each with these four sketches,
	// measured by window's TestKeyExplosionHeap; 8 KiB allowed) plus the
	// store's budget right after a write burst (internal/store/doc.go: ~1 GB
	// anonymous memory, mostly Badger's table builders; a heap profile of
	// this test shows Badger's buffers as nearly all of the growth). Without
	// the cap, 1M keys would add ~2.5 GiB of panes.
	growth := heapAfter - heapBefore
	limit := int64(capPanes+maxBatchEvents)*8<<10 + 1<<30
	t.Logf("keys=%d cap=%d: max open panes %d, open now %d, evicted early %d; live heap growth %.1f MiB (bound %.1f MiB)",
		n, capPanes, maxOpen, st.OpenPanes, st.EvictedEarly, float64(growth)/(1<<20), float64(limit)/(1<<20))
	if growth > limit {
		t.Errorf("live heap grew %.1f MiB, bound %.1f MiB", float64(growth)/(1<<20), float64(limit)/(1<<20))
	}
}
