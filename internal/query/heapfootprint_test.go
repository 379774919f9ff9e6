package query

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/heapsize"
	"github.com/sketchd/sketchd/sketch"
)

// footprintKinds are the six sketch kinds at their defaults (the load
// runner's streams), each fed the runner's kind of input.
var footprintKinds = []sketch.Kind{sketch.KindHLL, sketch.KindCMS, sketch.KindTDigest, sketch.KindReservoir, sketch.KindTheta, sketch.KindDDSketch}

// footprintBlobs returns count encoded sketches of kind k, each of about
// events events of the load runner's shape: user ids, a few hundred
// URLs, latencies in milliseconds, ~130-byte events for the reservoir.
func footprintBlobs(tb testing.TB, rng *rand.Rand, k sketch.Kind, events, count int) [][]byte {
	tb.Helper()
	out := make([][]byte, count)
	for i := range out {
		s, err := sketch.New(sketch.Params{Kind: k}.Normalize())
		if err != nil {
			tb.Fatal(err)
		}
		for range events {
			var item []byte
			switch k {
			case sketch.KindCMS:
				item = fmt.Appendf(nil, "/products/%d", rng.IntN(400))
			case sketch.KindReservoir:
				item = fmt.Appendf(nil, `{"ts":"2026-12-06T01:%02d:%02dZ","country":"de","device":"mobile","user_id":"u%d","url":"/products/%d","latency_ms":%d}`,
					rng.IntN(60), rng.IntN(60), rng.IntN(1e6), rng.IntN(400), rng.IntN(900))
			default:
				item = fmt.Appendf(nil, "u%d", rng.IntN(1e6))
			}
			if err := sketch.Add(s, item, rng.ExpFloat64()*40+1, rng.Uint64()); err != nil {
				tb.Fatal(err)
			}
		}
		b, err := s.AppendBinary(nil)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// paneCacheFootprint fills a pane cache of max bytes past its budget with
// panes decoded from blobs and returns the live heap it holds and the
// bytes it accounts.
func paneCacheFootprint(tb testing.TB, max int64, blobs [][]byte) (heap, accounted int64) {
	tb.Helper()
	before := heapsize.Live()
	c := newPaneCache(max)
	for i := 0; i < 8 || c.stats().evicted < c.stats().entries; i++ {
		sk, err := sketch.Decode(blobs[i%len(blobs)])
		if err != nil {
			tb.Fatal(err)
		}
		k := cacheKey{stream: 1, agg: i % 4, key: fmt.Sprintf("country=%02d\x00device=%d", i%97, i%7), start: int64(i) * 60e9}
		c.put(k, cached{sk: sk, events: 1, panes: 1})
	}
	heap = heapsize.Live() - before
	runtime.KeepAlive(c)
	return heap, c.stats().bytes
}

// maxHeapPerAccounted bounds the live heap of a full cache against the
// bytes it accounts: the accounting (lru entries, sketch Size) may err by
// this factor at most. Before it was honest, a pane cache of one-event
// count-min panes held 5.5 times its budget, of ddsketch panes 3.8 times,
// of small t-digest, theta or HLL panes 1.4 to 2 times.
const maxHeapPerAccounted = 1.4

// TestPaneCacheHoldsItsBudget fills a pane cache past its budget with
// decoded panes of every kind, of 1 to 1,000 events each, and checks that
// the live heap it holds is within maxHeapPerAccounted of what it
// accounts (and at least half: an overcount wastes the budget).
func TestPaneCacheHoldsItsBudget(t *testing.T) {
	const seed = 14
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, k := range footprintKinds {
		for _, n := range []int{1, 10, 100, 1000} {
			blobs := footprintBlobs(t, rng, k, n, 16)
			heap, acc := paneCacheFootprint(t, 2<<20, blobs)
			r := float64(heap) / float64(acc)
			t.Logf("%-9s events=%-5d wire=%-6d heap=%-9d accounted=%-9d heap/accounted=%.2f", k, n, len(blobs[0]), heap, acc, r)
			if r > maxHeapPerAccounted || r < 0.5 {
				t.Errorf("%s panes of %d events: the cache holds %d bytes of heap for %d accounted (%.2f, want 0.5..%.1f)", k, n, heap, acc, r, maxHeapPerAccounted)
			}
		}
	}
}

// TestWindowAndResultCachesHoldTheirBudget fills a window cache and a
// result cache past their budgets with windows of 10 groups, each a
// decoded sketch of 100 events of the four kinds of the load runner's
// streams, and checks their live heap against what they account, as
// TestPaneCacheHoldsItsBudget does. (With 100-event sketches, the fixed
// 96 or 64 bytes per group or window they counted before were about right
// too: 1.0 to 1.26.)
func TestWindowAndResultCachesHoldTheirBudget(t *testing.T) {
	const seed = 15
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, k := range footprintKinds[:4] {
		blobs := footprintBlobs(t, rng, k, 100, 16)
		decode := func(i int) sketch.Sketch {
			sk, err := sketch.Decode(blobs[i%len(blobs)])
			if err != nil {
				t.Fatal(err)
			}
			return sk
		}
		check := func(cache string, heap, acc int64) {
			r := float64(heap) / float64(acc)
			t.Logf("%-9s %s: heap=%d accounted=%d heap/accounted=%.2f", k, cache, heap, acc, r)
			if r > maxHeapPerAccounted || r < 0.5 {
				t.Errorf("%s %s: %d bytes of heap for %d accounted (%.2f, want 0.5..%.1f)", k, cache, heap, acc, r, maxHeapPerAccounted)
			}
		}

		before := heapsize.Live()
		wc := newWinCache(2 << 20)
		for i := 0; i < 8 || wc.stats().evicted < wc.stats().entries; i++ {
			groups := map[string]winGroup{}
			for g := range 10 {
				groups[fmt.Sprintf("c%02d\x00d%d", g, i%7)] = winGroup{events: 100, panes: 60, sk: decode(i + g), id: uint64(i)}
			}
			wc.put(winKey{shape: "shape-of-the-query", start: int64(i) * 3600e9}, groups)
		}
		check("window cache", heapsize.Live()-before, wc.stats().bytes)
		runtime.KeepAlive(wc)

		before = heapsize.Live()
		rc := newResultCache(1<<20, 2<<20)
		for i := 0; i < 8 || len(rc.m) > i/2; i++ {
			res := &Result{Aggregate: "a", Resolution: []Span{{}}}
			for g := range 10 {
				grp := Group{Key: map[string]string{"country": fmt.Sprintf("c%02d", g), "device": fmt.Sprintf("d%d", i%7)}}
				for w := range 6 {
					grp.Windows = append(grp.Windows, Window{Start: int64(w), Events: 100, Panes: 10, Sketch: decode(i + g + w)})
				}
				res.Groups = append(res.Groups, grp)
			}
			rc.mu.Lock()
			rc.put(fmt.Sprintf("result-key-%d", i), res)
			rc.mu.Unlock()
		}
		check("result cache", heapsize.Live()-before, rc.bytes)
		runtime.KeepAlive(rc)
	}
}

// TestTailMemoHoldsItsBudget keeps tails of 16 open panes (every slot a
// sketch of the load runner's four kinds, of 1 to 100 events) in a tail
// memo, each decoded for every aggregate as the questions of a dashboard
// do, and checks the live heap against what the memo accounts, as
// TestPaneCacheHoldsItsBudget does. Counting 96 bytes a pane and twice
// its blobs before, it held 1.5 to 2.5 times what it accounted.
func TestTailMemoHoldsItsBudget(t *testing.T) {
	const seed = 16
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	aggs := make([]aggregate, 4)
	for i, k := range footprintKinds[:4] {
		aggs[i] = aggregate{name: k.String(), index: i, params: sketch.Params{Kind: k}.Normalize()}
	}
	for _, n := range []int{1, 10, 100} {
		var blobs [4][][]byte
		for i, k := range footprintKinds[:4] {
			blobs[i] = footprintBlobs(t, rng, k, n, 16)
		}
		before := heapsize.Live()
		m := newTailMemo(3 << 20 * tailStates)
		p := &plan{target: Target{ID: 1, LastCommit: 1}}
		for ki := 0; ; ki++ {
			key := fmt.Sprintf("country=%02d\x00device=%d", ki%97, ki)
			tl := &tail{from: 0, to: 16}
			for pi := range 16 {
				r := sketchd.PaneRecord{Key: key, Start: int64(pi), Events: uint64(n)}
				var total int
				for s := range blobs {
					total += len(blobs[s][pi])
				}
				buf := make([]byte, 0, total) // one buffer per pane, as the store reads it
				for s := range blobs {
					buf = append(buf, blobs[s][pi]...)
					r.Sketches = append(r.Sketches, buf[len(buf)-len(blobs[s][pi]):len(buf):len(buf)])
				}
				tl.panes = append(tl.panes, r)
			}
			for i := range tl.panes {
				for _, a := range aggs {
					if _, err := tl.sketch(i, a); err != nil {
						t.Fatal(err)
					}
				}
			}
			m.store(p, key, tl)
			if m.refused > 0 {
				break
			}
		}
		heap := heapsize.Live() - before
		acc, _ := m.stats()
		r := float64(heap) / float64(acc)
		t.Logf("panes of %d events: heap=%d accounted=%d heap/accounted=%.2f", n, heap, acc, r)
		if r > maxHeapPerAccounted || r < 0.5 {
			t.Errorf("panes of %d events: %d bytes of heap for %d accounted (%.2f, want 0.5..%.1f)", n, heap, acc, r, maxHeapPerAccounted)
		}
		runtime.KeepAlive(m)
	}
}
