package heapsize

import (
	"fmt"
	"runtime"
	"testing"
)

// TestClass checks Class against the allocator: blocks of n bytes, at least
// 1,000 and at least 4 MiB at a time (so that a few KiB the runtime or the
// test binary allocates meanwhile is under 0.2%), take Class(n) each, within
// 5%. The smallest of three trials counts: the noise only ever adds.
func TestClass(t *testing.T) {
	for _, n := range []int64{1, 9, 24, 40, 100, 130, 200, 300, 700, 1500, 5000, 20000} {
		got := int64(-1)
		for range 3 {
			if each := heapPerBlock(n); got < 0 || each < got {
				got = each
			}
		}
		if want := Class(n); n >= 16 && (float64(got) < 0.95*float64(want) || float64(got) > 1.05*float64(want)) {
			t.Errorf("%d bytes: %d of heap each, Class says %d", n, got, want)
		}
	}
}

// heapPerBlock is the live heap each of many blocks of n bytes takes.
func heapPerBlock(n int64) int64 {
	keep := make([][]byte, max(1000, (4<<20)/n))
	before := Live()
	for i := range keep {
		keep[i] = make([]byte, n)
	}
	got := (Live() - before) / int64(len(keep))
	runtime.KeepAlive(keep)
	return got
}

// TestMap checks Map against maps of string to int64 built by inserting, at
// least 100 maps and 10,000 entries at a time, within 20%; the smallest of
// three trials counts, as in TestClass.
func TestMap(t *testing.T) {
	for _, n := range []int{1, 8, 9, 50, 200, 1000, 5000} {
		got := int64(-1)
		for range 3 {
			if each := heapPerMap(n); got < 0 || each < got {
				got = each
			}
		}
		want := Map(n, 24) // excluding the keys' bytes, counted below
		keyBytes := int64(n) * Class(int64(len(mapKey(0))))
		if r := float64(got) / float64(want+keyBytes); r < 0.8 || r > 1.2 {
			t.Errorf("%d entries: %d of heap, Map and the keys say %d (ratio %.2f)", n, got, want+keyBytes, r)
		}
	}
}

// heapPerMap is the live heap each of many maps of n entries takes, keys
// included.
func heapPerMap(n int) int64 {
	keep := make([]map[string]int64, max(100, 10000/n))
	before := Live()
	for i := range keep {
		m := map[string]int64{}
		for j := range n {
			m[mapKey(j)] = int64(j)
		}
		keep[i] = m
	}
	got := (Live() - before) / int64(len(keep))
	runtime.KeepAlive(keep)
	return got
}

// mapKey is 24 bytes: past the tiny allocator.
func mapKey(j int) string { return fmt.Sprintf("key-%020d", j) }
