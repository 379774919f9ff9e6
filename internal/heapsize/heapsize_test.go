package heapsize

import (
	"fmt"
	"runtime"
	"testing"
)

// TestClass checks Class against the allocator: blocks of n bytes, 1,000
// at a time, take Class(n) each, within 5%.
func TestClass(t *testing.T) {
	for _, n := range []int64{1, 9, 24, 40, 100, 130, 200, 300, 700, 1500, 5000, 20000} {
		keep := make([][]byte, 1000)
		before := Live()
		for i := range keep {
			keep[i] = make([]byte, n)
		}
		got := (Live() - before) / int64(len(keep))
		runtime.KeepAlive(keep)
		if want := Class(n); n >= 16 && (float64(got) < 0.95*float64(want) || float64(got) > 1.05*float64(want)) {
			t.Errorf("%d bytes: %d of heap each, Class says %d", n, got, want)
		}
	}
}

// TestMap checks Map against maps of string to int64 built by inserting,
// 100 at a time, within 20%.
func TestMap(t *testing.T) {
	for _, n := range []int{1, 8, 9, 50, 200, 1000, 5000} {
		keep := make([]map[string]int64, 100)
		before := Live()
		for i := range keep {
			m := map[string]int64{}
			for j := range n {
				m[fmt.Sprintf("key-%020d", j)] = int64(j) // 24 bytes: past the tiny allocator
			}
			keep[i] = m
		}
		got := (Live() - before) / int64(len(keep))
		runtime.KeepAlive(keep)
		want := Map(n, 24) // excluding the keys' bytes, counted below
		keyBytes := int64(0)
		for k := range keep[0] {
			keyBytes += Class(int64(len(k)))
		}
		if r := float64(got) / float64(want+keyBytes); r < 0.8 || r > 1.2 {
			t.Errorf("%d entries: %d of heap, Map and the keys say %d (ratio %.2f)", n, got, want+keyBytes, r)
		}
	}
}
