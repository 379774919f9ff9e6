package sketch_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// footprintKinds are the sketches of the footprint figures: the default
// parameters, items of about 10 bytes for CMS, 40-byte reservoir items.
var footprintKinds = []struct {
	name string
	p    sketch.Params
	add  func(s sketch.Sketch, i, v uint64)
}{
	{"hll", sketch.Params{Kind: sketch.KindHLL}, func(s sketch.Sketch, i, _ uint64) { s.(*sketch.HLL).InsertHash(splitmix64(i)) }},
	{"cms", sketch.Params{Kind: sketch.KindCMS}, func(s sketch.Sketch, _, v uint64) {
		it := itemOf(v)
		s.(*sketch.CountMin).Add(sketch.Hash(it), it, 1)
	}},
	{"tdigest", sketch.Params{Kind: sketch.KindTDigest}, func(s sketch.Sketch, i, _ uint64) {
		_ = s.(*sketch.TDigest).Add(float64(splitmix64(i) >> 11))
	}},
	{"reservoir", sketch.Params{Kind: sketch.KindReservoir}, func(s sketch.Sketch, i, _ uint64) {
		s.(*sketch.Reservoir).Add(splitmix64(i), []byte("event-payload-of-about-40-bytes-xxxxxxxx"), 1)
	}},
}

// footprintBuild returns a function that builds a sketch of kind k from n
// events.
func footprintBuild(k int, n int) func() sketch.Sketch {
	fk := footprintKinds[k]
	return func() sketch.Sketch {
		s, _ := sketch.New(fk.p)
		for i := range n {
			fk.add(s, uint64(i), uint64(i)%50000)
		}
		return s
	}
}

// footprint measures the live heap bytes per sketch of copies sketches
// built by build (after GC, so garbage of the building does not count),
// and the Size and encoded bytes of one.
func footprint(copies int, build func() sketch.Sketch) (heap, size, wire int) {
	keep := make([]sketch.Sketch, copies)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := range keep {
		keep[i] = build()
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b, _ := keep[0].AppendBinary(nil)
	heap = int(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / copies
	runtime.KeepAlive(keep)
	return heap, keep[0].Size(), len(b)
}

// BenchmarkFootprint builds sketches of 0, 10 and 100,000 events of every
// kind and reports their live heap bytes (heap-B), what Size reports
// (size-B, the figure memory accounting uses) and their encoding
// (wire-B). The package doc says what they show; the figures are here:
//
//	go test ./sketch -run '^$' -bench Footprint
func BenchmarkFootprint(b *testing.B) {
	for k, fk := range footprintKinds {
		for _, n := range []int{0, 10, 100000} {
			b.Run(fmt.Sprintf("%s/events=%d", fk.name, n), func(b *testing.B) {
				build := footprintBuild(k, n)
				for b.Loop() {
					build()
				}
				copies := 200
				if n > 10 {
					copies = 4
				}
				heap, size, wire := footprint(copies, build)
				b.ReportMetric(float64(heap), "heap-B")
				b.ReportMetric(float64(size), "size-B")
				b.ReportMetric(float64(wire), "wire-B")
			})
		}
	}
}

// TestFootprint checks the package doc's claims on memory: small panes
// stay small (a 10-event sketch of any kind takes at most 2 KiB of heap),
// and Size, which memory accounting sums, is within 25% of the live heap
// of a large (100,000-event) sketch of every kind.
func TestFootprint(t *testing.T) {
	for k, fk := range footprintKinds {
		heap, size, _ := footprint(200, footprintBuild(k, 10))
		if heap > 2048 {
			t.Errorf("%s: a 10-event sketch takes %d heap bytes, want ≤ 2 KiB", fk.name, heap)
		}
		heap, size, _ = footprint(4, footprintBuild(k, 100000))
		if r := float64(size) / float64(heap); r < 0.75 || r > 1.25 {
			t.Errorf("%s: 100,000 events: Size() = %d, live heap %d bytes (ratio %.2f, want 0.75..1.25)", fk.name, size, heap, r)
		}
	}
}
