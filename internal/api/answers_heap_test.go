package api

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/sketchd/sketchd/internal/heapsize"
)

// TestAnswerCacheHoldsItsBudget fills answer caches past their budget with
// rendered windows (about 200 bytes, the window memo's) and answers (about
// 20 KB, grown by appending as rendering does), and checks that the live
// heap each holds is within 1.3 times the bytes it accounts, and at least
// 0.7 times. Counting the body's length, not its capacity, and 64 bytes
// for the entry, a cache of 200-byte windows held 1.4 times its budget.
func TestAnswerCacheHoldsItsBudget(t *testing.T) {
	for _, bodyLen := range []int{200, 20000} {
		before := heapsize.Live()
		c := newAnswerCache(2 << 20)
		key := "js\x00" + string(bytes.Repeat([]byte("k"), 120))
		for i := 0; len(c.m) == 0 || i < 3*len(c.m); i++ {
			var body []byte
			for len(body) < bodyLen {
				body = fmt.Appendf(body, `{"start":"2026-12-06T01:%02d:00Z","estimate":%d},`, i%60, i)
			}
			question := ""
			if bodyLen > 1000 {
				question = fmt.Sprintf("%sq%d", key, i)
			}
			c.put(fmt.Sprintf("%s%d", key, i), question, body)
		}
		heap := heapsize.Live() - before
		r := float64(heap) / float64(c.bytes)
		t.Logf("bodies of %d bytes: %d entries, heap %d, accounted %d: %.2f", bodyLen, len(c.m), heap, c.bytes, r)
		if r > 1.3 || r < 0.7 {
			t.Errorf("bodies of %d bytes: the cache holds %d bytes of heap for %d accounted (%.2f, want 0.7..1.3)", bodyLen, heap, c.bytes, r)
		}
		runtime.KeepAlive(c)
	}
}
