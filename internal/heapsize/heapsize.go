// Package heapsize estimates the Go heap that objects take, for the memory
// accounting of caches and sketches: the allocator's size classes and the
// layout of maps.
package heapsize

import "runtime"

// Class rounds n up to the size of the Go allocator's block that holds it
// (runtime/sizeclasses.go: multiples of 8 to 32 bytes, of 16 to 128, then
// about an eighth apart); past 32 KiB, whole 8 KiB pages.
func Class(n int64) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 32:
		return (n + 7) &^ 7
	case n <= 128:
		return (n + 15) &^ 15
	case n > 32<<10:
		return (n + 8191) &^ 8191
	}
	step := int64(16)
	for step*16 < n {
		step *= 2
	}
	return (n + step - 1) / step * step
}

// Map is the heap of a Go map of n entries of slot bytes (key and value)
// built by inserting them: its header, and groups of 8 slots with 8
// control bytes, doubled whenever they were 7/8 full.
func Map(n int, slot uintptr) int64 {
	const header = 48
	if n == 0 {
		return header
	}
	groups := int64(1)
	if n > 8 {
		for groups*7 < int64(n) {
			groups *= 2
		}
	}
	return header + Class(groups*(8+8*int64(slot)))
}

// MapEntry is the heap an entry of a map-indexed cache takes besides what
// its values point to: its node (node bytes, rounded up to the size
// class) and its map slot (slot bytes) at the load factor of a map that
// grows by doubling past 7/8 full (7/16 to 7/8: about 2/3 on average),
// with its control byte.
func MapEntry(node, slot uintptr) int64 {
	return Class(int64(node)) + (int64(slot)+1)*3/2
}

// Live is the live heap after a full collection (two: the first may leave
// objects its finalizers free), the figure the accounting tests hold a
// cache's bytes against.
func Live() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
