package query

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// TestBoundedMapHoldsItsBudget fills the span key-list cache with lists of
// 180 keys (the load runner's stream) until it starts over, and checks
// that it never accounts more than its share of the pane cache's budget,
// and that the live heap it holds is within maxHeapPerAccounted of what it
// accounts.
func TestBoundedMapHoldsItsBudget(t *testing.T) {
	const cacheBytes = 16 << 20
	before := heapsize.Live()
	c := newBoundedMap[tierSpanKey, []string](cacheBytes, maxTierSpans)
	var peakHeap, peakAcc int64
	for i := 0; ; i++ {
		keys := make([]string, 0, 180)
		for k := range 180 {
			keys = append(keys, fmt.Sprintf("country=%02d\x00device=d%03d", k%30, k))
		}
		n := len(c.m)
		c.put(tierSpanKey{stream: 1, from: int64(i), to: int64(i + 1)}, keys)
		if c.bytes > cacheBytes/boundedShare {
			t.Fatalf("accounts %d bytes, past its budget of %d", c.bytes, cacheBytes/boundedShare)
		}
		if len(c.m) < n { // started over: measure just before
			break
		}
		if i%64 == 63 {
			peakHeap, peakAcc = heapsize.Live()-before, c.bytes
		}
	}
	r := float64(peakHeap) / float64(peakAcc)
	t.Logf("heap=%d accounted=%d heap/accounted=%.2f", peakHeap, peakAcc, r)
	if r > maxHeapPerAccounted || r < 0.5 {
		t.Errorf("%d bytes of heap for %d accounted (%.2f, want 0.5..%.1f)", peakHeap, peakAcc, r, maxHeapPerAccounted)
	}
	runtime.KeepAlive(c)
}
