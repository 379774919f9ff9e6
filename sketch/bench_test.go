package sketch_test

// Run: go test ./sketch -run '^$' -bench . -benchmem
// (figures in the package doc: go1.26.8 linux/amd64, AMD EPYC, 2 vCPU)

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

func mustEncode(tb testing.TB, s sketch.Sketch) []byte {
	tb.Helper()
	buf, err := s.AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return buf
}

func benchCodec(b *testing.B, s sketch.Sketch) {
	blob := mustEncode(b, s)
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(blob))
		for b.Loop() {
			buf, _ = s.AppendBinary(buf[:0])
		}
		b.SetBytes(int64(len(blob)))
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sketch.Decode(blob); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(blob)))
	})
}

func denseHLL(seed uint64) *sketch.HLL {
	h, _ := sketch.NewHLL(14)
	for i := range 100000 {
		h.InsertHash(splitmix64(seed<<40 | uint64(i)))
	}
	return h
}

func BenchmarkHLL(b *testing.B) {
	b.Run("InsertHashDense", func(b *testing.B) {
		b.ReportAllocs()
		h := denseHLL(1)
		var i uint64
		for b.Loop() {
			i++
			h.InsertHash(splitmix64(i))
		}
	})
	b.Run("Insert10IntoNew", func(b *testing.B) {
		b.ReportAllocs()
		var i uint64
		for b.Loop() {
			h, _ := sketch.NewHLL(14)
			for range 10 {
				i++
				h.InsertHash(splitmix64(i))
			}
		}
	})
	b.Run("EstimateDense", func(b *testing.B) {
		b.ReportAllocs()
		h := denseHLL(2)
		var i uint64
		for b.Loop() {
			i++
			h.InsertHash(splitmix64(i)) // invalidate the cache
			_ = h.Estimate()
		}
	})
	b.Run("EstimateSparse1000", func(b *testing.B) {
		b.ReportAllocs()
		h, _ := sketch.NewHLL(14)
		for i := range 1000 {
			h.InsertHash(splitmix64(uint64(i)))
		}
		var i uint64
		for b.Loop() {
			i++
			h.InsertHash(splitmix64(i % 1000))
			_ = h.Estimate()
		}
	})
	b.Run("MergeDense", func(b *testing.B) {
		b.ReportAllocs()
		dst, src := denseHLL(3), denseHLL(4)
		for b.Loop() {
			_ = dst.Merge(src)
		}
	})
	b.Run("Dense", func(b *testing.B) { benchCodec(b, denseHLL(5)) })
	// A pane of the load runner's stream over its one-second run: 6,700
	// user ids, Zipf(1.1) over 100,000, into a new (sparse) HLL. ns/insert
	// is per InsertHash.
	b.Run("InsertZipfPane", func(b *testing.B) {
		_, hs := zipfItems(0, 100000)
		vals := zipfStream(11, 1<<16, 100000)
		const pane = 6700
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h, _ := sketch.NewHLL(14)
			for range pane {
				h.InsertHash(hs[vals[i&(1<<16-1)]])
				i++
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/insert")
	})
}

func zipfItems(n int, distinct uint64) ([][]byte, []uint64) {
	items := make([][]byte, distinct)
	for i := range items {
		items[i] = itemOf(uint64(i))
	}
	hs := make([]uint64, distinct)
	for i := range hs {
		hs[i] = sketch.Hash(items[i])
	}
	_ = n
	return items, hs
}

func tableCMS(seed uint64, n int) *sketch.CountMin {
	items, hs := zipfItems(n, 100000)
	c, _ := sketch.NewCountMin(0.001, 0.01, 20)
	for _, v := range zipfStream(seed, n, 100000) {
		c.Add(hs[v], items[v], 1)
	}
	return c
}

func BenchmarkCMS(b *testing.B) {
	items, hs := zipfItems(0, 100000)
	vals := zipfStream(9, 1<<16, 100000)
	b.Run("AddTable", func(b *testing.B) {
		b.ReportAllocs()
		c := tableCMS(1, 200000)
		i := 0
		for b.Loop() {
			v := vals[i&(1<<16-1)]
			c.Add(hs[v], items[v], 1)
			i++
		}
	})
	b.Run("AddTableWithHash", func(b *testing.B) {
		b.ReportAllocs()
		c := tableCMS(1, 200000)
		i := 0
		for b.Loop() {
			it := items[vals[i&(1<<16-1)]]
			c.Add(sketch.Hash(it), it, 1)
			i++
		}
	})
	b.Run("Add10IntoNew", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c, _ := sketch.NewCountMin(0.001, 0.01, 20)
			for range 10 {
				v := vals[i&(1<<16-1)]
				c.Add(hs[v], items[v], 1)
				i++
			}
		}
	})
	b.Run("MergeTable", func(b *testing.B) {
		b.ReportAllocs()
		dst, src := tableCMS(2, 100000), tableCMS(3, 100000)
		for b.Loop() {
			_ = dst.Merge(src)
		}
	})
	b.Run("TopK20", func(b *testing.B) {
		b.ReportAllocs()
		c := tableCMS(4, 100000)
		for b.Loop() {
			_ = c.TopK(20)
		}
	})
	b.Run("Table", func(b *testing.B) { benchCodec(b, tableCMS(5, 100000)) })
	// A minute pane of a few hundred distinct items, in exact mode.
	b.Run("Exact", func(b *testing.B) { benchCodec(b, tableCMS(6, 1000)) })
	// An hour of such panes merged into an empty sketch, as a query's
	// window does.
	b.Run("MergeMany60Exact", func(b *testing.B) {
		b.ReportAllocs()
		panes := make([]*sketch.CountMin, 60)
		for i := range panes {
			panes[i] = tableCMS(uint64(10+i), 100)
		}
		for b.Loop() {
			c, _ := sketch.NewCountMin(0.001, 0.01, 20)
			if err := c.MergeMany(panes...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func filledTDigest(seed uint64, n int) *sketch.TDigest {
	rng := rand.New(rand.NewPCG(seed, 3))
	t, _ := sketch.NewTDigest(100)
	for range n {
		_ = t.Add(math.Exp(1.5 * rng.NormFloat64()))
	}
	return t
}

func BenchmarkTDigest(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([]float64, 1<<16)
	for i := range xs {
		xs[i] = math.Exp(1.5 * rng.NormFloat64())
	}
	b.Run("Add", func(b *testing.B) {
		b.ReportAllocs()
		t := filledTDigest(1, 100000)
		i := 0
		for b.Loop() {
			_ = t.Add(xs[i&(1<<16-1)])
			i++
		}
	})
	b.Run("Add10IntoNew", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t, _ := sketch.NewTDigest(100)
			for range 10 {
				_ = t.Add(xs[i&(1<<16-1)])
				i++
			}
		}
	})
	b.Run("Quantile", func(b *testing.B) {
		b.ReportAllocs()
		t := filledTDigest(2, 100000)
		// Flush the buffer so that queries do not allocate a view.
		_ = t.MergeMany()
		for b.Loop() {
			_ = t.Quantile(0.99)
		}
	})
	b.Run("MergeLarge", func(b *testing.B) {
		b.ReportAllocs()
		src := filledTDigest(3, 100000)
		for b.Loop() {
			dst := filledTDigest(4, 0)
			_ = dst.Merge(src)
		}
	})
	b.Run("Large", func(b *testing.B) { benchCodec(b, filledTDigest(5, 100000)) })
}

// BenchmarkQuantileIngest puts the per-event ingest cost of the two
// quantile kinds side by side on the same lognormal values: the t-digest at
// its default compression 100 and the DDSketch at its default α = 1%
// (sketches-go's logarithmic mapping, collapsing dense stores), each filled
// with 100,000 values first, and each into a new sketch (a fresh pane).
// Run: go test ./sketch -run '^$' -bench QuantileIngest -benchmem
func BenchmarkQuantileIngest(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([]float64, 1<<16)
	for i := range xs {
		xs[i] = math.Exp(1.5 * rng.NormFloat64())
	}
	b.Run("TDigest/Add", func(b *testing.B) {
		b.ReportAllocs()
		t := filledTDigest(1, 100000)
		i := 0
		for b.Loop() {
			_ = t.Add(xs[i&(1<<16-1)])
			i++
		}
	})
	b.Run("DDSketch/Add", func(b *testing.B) {
		b.ReportAllocs()
		d, _ := sketch.NewDDSketch(0)
		for i := range 100000 {
			_ = d.Add(xs[i&(1<<16-1)])
		}
		i := 0
		for b.Loop() {
			_ = d.Add(xs[i&(1<<16-1)])
			i++
		}
	})
	b.Run("TDigest/Add10IntoNew", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t, _ := sketch.NewTDigest(100)
			for range 10 {
				_ = t.Add(xs[i&(1<<16-1)])
				i++
			}
		}
	})
	b.Run("DDSketch/Add10IntoNew", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d, _ := sketch.NewDDSketch(0)
			for range 10 {
				_ = d.Add(xs[i&(1<<16-1)])
				i++
			}
		}
	})
	b.Run("DDSketch/Large", func(b *testing.B) {
		d, _ := sketch.NewDDSketch(0)
		for i := range 100000 {
			_ = d.Add(xs[i&(1<<16-1)])
		}
		benchCodec(b, d)
	})
}

// BenchmarkTheta: the per-event cost of a k=4096 theta sketch past its
// exact mode (most hashes fall above θ), and into a new sketch.
func BenchmarkTheta(b *testing.B) {
	b.Run("InsertHash", func(b *testing.B) {
		b.ReportAllocs()
		t, _ := sketch.NewTheta(0)
		var i uint64
		for range 100000 {
			i++
			t.InsertHash(splitmix64(i))
		}
		for b.Loop() {
			i++
			t.InsertHash(splitmix64(i))
		}
	})
	b.Run("Insert10IntoNew", func(b *testing.B) {
		b.ReportAllocs()
		var i uint64
		for b.Loop() {
			t, _ := sketch.NewTheta(0)
			for range 10 {
				i++
				t.InsertHash(splitmix64(i))
			}
		}
	})
}

// BenchmarkTDigestMerge1440 merges 1440 small-to-medium digests (a day of
// one-minute panes: 10 to 5,000 values each, ~1.8M in all), as a query
// does. "MergeAll" collects all centroids and compresses once; "Pairwise"
// calls Merge 1440 times; "DecodeMergeAll" starts from the stored blobs.
func BenchmarkTDigestMerge1440(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	panes := make([]sketch.Sketch, 1440)
	blobs := make([][]byte, 1440)
	for i := range panes {
		n := 10 + rng.IntN(2500)
		if i%10 == 0 {
			n = 5000
		}
		panes[i] = filledTDigest(uint64(i), n)
		blobs[i] = mustEncode(b, panes[i])
	}
	b.Run("MergeAll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dst, _ := sketch.NewTDigest(100)
			if err := sketch.MergeAll(dst, panes...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Pairwise", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dst, _ := sketch.NewTDigest(100)
			for _, p := range panes {
				_ = dst.Merge(p)
			}
		}
	})
	b.Run("DecodeMergeAll", func(b *testing.B) {
		b.ReportAllocs()
		srcs := make([]sketch.Sketch, len(blobs))
		for b.Loop() {
			for i, blob := range blobs {
				s, err := sketch.Decode(blob)
				if err != nil {
					b.Fatal(err)
				}
				srcs[i] = s
			}
			dst, _ := sketch.NewTDigest(100)
			if err := sketch.MergeAll(dst, srcs...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func filledReservoir(seed uint64, n int) *sketch.Reservoir {
	r, _ := sketch.NewReservoir(32, false)
	for i := range n {
		r.Add(splitmix64(seed<<40|uint64(i)), []byte("event-payload-of-about-40-bytes-xxxxxxxx"), 1)
	}
	return r
}

func BenchmarkReservoir(b *testing.B) {
	item := []byte("event-payload-of-about-40-bytes-xxxxxxxx")
	b.Run("Add", func(b *testing.B) {
		b.ReportAllocs()
		r := filledReservoir(1, 100000)
		var i uint64
		for b.Loop() {
			i++
			r.Add(splitmix64(i), item, 1)
		}
	})
	b.Run("AddWeighted", func(b *testing.B) {
		b.ReportAllocs()
		r, _ := sketch.NewReservoir(32, true)
		var i uint64
		for b.Loop() {
			i++
			r.Add(splitmix64(i), item, float64(1+i%7))
		}
	})
	b.Run("Merge", func(b *testing.B) {
		b.ReportAllocs()
		src := filledReservoir(2, 10000)
		for b.Loop() {
			dst := filledReservoir(3, 0)
			_ = dst.Merge(src)
		}
	})
	b.Run("Full", func(b *testing.B) { benchCodec(b, filledReservoir(4, 10000)) })
}

// BenchmarkHLLMergeAll compares MergeAll (sparse-key union) with repeated
// Merge for a day of one-minute panes (1440 sparse HLLs of up to 20
// users), 96 quarter-hour blocks of up to 300, and 96 blocks whose union
// is dense (up to 1500 of 100,000 users each).
//
//	go test ./sketch -run '^$' -bench HLLMergeAll -benchmem
func BenchmarkHLLMergeAll(b *testing.B) {
	for _, c := range []struct{ parts, per, universe int }{{1440, 20, 5000}, {96, 300, 5000}, {96, 1500, 100_000}} {
		rng := rand.New(rand.NewPCG(1, 2))
		parts := make([]sketch.Sketch, c.parts)
		for i := range parts {
			h, _ := sketch.NewHLL(14)
			for range c.per {
				h.InsertHash(sketch.HashString("u" + strconv.Itoa(rng.IntN(c.universe))))
			}
			parts[i] = h
		}
		name := fmt.Sprintf("%dx%d_of_%d", c.parts, c.per, c.universe)
		b.Run(name+"/Merge", func(b *testing.B) {
			for b.Loop() {
				d := parts[0].Clone()
				for _, p := range parts[1:] {
					if err := d.Merge(p); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(name+"/MergeAll", func(b *testing.B) {
			for b.Loop() {
				if err := sketch.MergeAll(parts[0].Clone(), parts[1:]...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
