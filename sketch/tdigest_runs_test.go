package sketch_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestTDigestSortedRunsMergeAlike: a decoded digest's buffered values are
// sorted, and MergeMany takes them as sorted runs (merged pairwise, no
// sort) and keeps a merged buffer sorted; the same digests built by Add,
// their values in insertion order, go through the sort. Both must give the
// same bytes, merged in batches (the buffers overflow the target's) or
// buffered, and after Flush. The values have ties (rounded), as latencies
// in ms with two decimals do.
func TestTDigestSortedRunsMergeAlike(t *testing.T) {
	seed := uint64(20261206)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, c := range []struct {
		name            string
		panes, perPane  int
		compression     float64
		targetHasValues bool
	}{
		{"batches", 15, 300, 100, false},
		{"batches into values", 40, 120, 100, true},
		{"buffered", 6, 50, 100, false},
		{"buffered into values", 4, 60, 400, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var live, decoded []*sketch.TDigest
			for range c.panes {
				d := newTDigest(t, c.compression)
				for range 1 + rng.IntN(c.perPane) {
					v := math.Round(math.Exp(4+0.8*rng.NormFloat64())*100) / 100
					if err := d.Add(v); err != nil {
						t.Fatal(err)
					}
				}
				live = append(live, d)
				decoded = append(decoded, decodedTDigest(t, d))
			}
			a, b := newTDigest(t, c.compression), newTDigest(t, c.compression)
			if c.targetHasValues {
				for i := range 30 {
					_ = a.Add(float64(30 - i))
					_ = b.Add(float64(30 - i))
				}
			}
			if err := a.MergeMany(live...); err != nil {
				t.Fatal(err)
			}
			if err := b.MergeMany(decoded...); err != nil {
				t.Fatal(err)
			}
			sameDigest(t, "merged", a, b)
			a.Flush()
			b.Flush()
			sameDigest(t, "flushed", a, b)
		})
	}
}

func newTDigest(tb testing.TB, compression float64) *sketch.TDigest {
	tb.Helper()
	d, err := sketch.NewTDigest(compression)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func decodedTDigest(tb testing.TB, d *sketch.TDigest) *sketch.TDigest {
	tb.Helper()
	blob, err := d.AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := sketch.Decode(blob)
	if err != nil {
		tb.Fatal(err)
	}
	return s.(*sketch.TDigest)
}

func sameDigest(tb testing.TB, what string, a, b *sketch.TDigest) {
	tb.Helper()
	ba, _ := a.AppendBinary(nil)
	bb, _ := b.AppendBinary(nil)
	if !bytes.Equal(ba, bb) {
		ca, la := a.Centroids()
		cb, lb := b.Centroids()
		tb.Fatalf("%s: digests differ: %d centroids %d buffered vs %d %d", what, ca, la, cb, lb)
	}
	for _, q := range []float64{0.01, 0.5, 0.99} {
		if qa, qb := a.Quantile(q), b.Quantile(q); qa != qb {
			tb.Fatalf("%s: quantile %g: %+v vs %+v", what, q, qa, qb)
		}
	}
}

// TestTDigestDecodeArena: digests decoded in a DecodeArena equal those
// Decode makes; a merge of them (as a rollup block is merged from its
// panes) keeps its answer after the arena is reset and filled again; and
// adding to an arena digest does not write over the next one's values.
func TestTDigestDecodeArena(t *testing.T) {
	seed := uint64(1612)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	pane := func() []byte {
		d := newTDigest(t, 100)
		for range 100 + rng.IntN(300) {
			_ = d.Add(math.Round(math.Exp(4+0.8*rng.NormFloat64())*100) / 100)
		}
		b, err := d.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var arena sketch.DecodeArena
	decodeAll := func(blobs [][]byte, a *sketch.DecodeArena) []sketch.Sketch {
		var out []sketch.Sketch
		for _, b := range blobs {
			s, err := sketch.DecodeIn(b, a)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	for block := range 3 {
		var blobs [][]byte
		for range 15 {
			blobs = append(blobs, pane())
		}
		in, plain := decodeAll(blobs, &arena), decodeAll(blobs, nil)
		for i := range in {
			sameDigest(t, fmt.Sprintf("block %d pane %d", block, i), in[i].(*sketch.TDigest), plain[i].(*sketch.TDigest))
		}
		merged, want := in[0].Clone(), plain[0].Clone()
		if err := sketch.MergeAll(merged, in[1:]...); err != nil {
			t.Fatal(err)
		}
		if err := sketch.MergeAll(want, plain[1:]...); err != nil {
			t.Fatal(err)
		}
		before, _ := merged.AppendBinary(nil)
		single := in[0].Clone() // a block of one pane
		if err := sketch.MergeAll(single); err != nil {
			t.Fatal(err)
		}
		singleBefore, _ := single.AppendBinary(nil)
		arena.Reset()
		next := [][]byte{pane(), pane(), pane()}
		again := decodeAll(next, &arena)
		_ = again[0].(*sketch.TDigest).Add(1e9) // appends past its arena slice
		sameDigest(t, "merged, arena reused", merged.(*sketch.TDigest), want.(*sketch.TDigest))
		if after, _ := merged.AppendBinary(nil); !bytes.Equal(before, after) {
			t.Fatalf("block %d: the merged digest changed when the arena was reused", block)
		}
		if after, _ := single.AppendBinary(nil); !bytes.Equal(singleBefore, after) {
			t.Fatalf("block %d: a one-pane merge changed when the arena was reused", block)
		}
		if got, _ := again[1].AppendBinary(nil); !bytes.Equal(got, next[1]) {
			t.Fatalf("block %d: adding to one arena digest changed the next", block)
		}
		arena.Reset()
	}
}
