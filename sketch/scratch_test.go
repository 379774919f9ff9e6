package sketch_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestMergeScratchNotShared: the merges that take their temporary slices
// from a pool (scratch.go: HLL, t-digest, count-min) return results that
// share nothing with them. A merged sketch's encoding stays the same while
// many more merges of other data reuse the pooled slices, some of them
// concurrently (go test -race reports a slice used by two merges at once).
func TestMergeScratchNotShared(t *testing.T) {
	const seed = 31
	t.Logf("seed %d", seed)
	for _, p := range []sketch.Params{
		{Kind: sketch.KindHLL, Precision: 14},
		{Kind: sketch.KindTDigest, Compression: 100},
		{Kind: sketch.KindCMS, Epsilon: 0.001, Delta: 0.01, TopK: 10},
	} {
		t.Run(fmt.Sprint(p.Kind), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(p.Kind)))
			merged := func(rng *rand.Rand) (sketch.Sketch, []byte) {
				parts := make([]sketch.Sketch, 2+rng.IntN(60))
				for i := range parts {
					parts[i] = mustNew(t, p)
					for range rng.IntN(400) {
						v := rng.IntN(50_000)
						if err := sketch.Add(parts[i], fmt.Appendf(nil, "i%d", v), float64(v), rng.Uint64()); err != nil {
							t.Fatal(err)
						}
					}
				}
				dst := mustNew(t, p)
				if err := sketch.MergeAll(dst, parts...); err != nil {
					t.Fatal(err)
				}
				enc, err := dst.AppendBinary(nil)
				if err != nil {
					t.Fatal(err)
				}
				return dst, enc
			}
			kept := make([]sketch.Sketch, 20)
			encs := make([][]byte, len(kept))
			for i := range kept {
				kept[i], encs[i] = merged(rng)
			}
			done := make(chan struct{})
			for g := range 2 {
				go func() {
					defer func() { done <- struct{}{} }()
					rng := rand.New(rand.NewPCG(seed, uint64(100+g)))
					for range 30 {
						merged(rng)
					}
				}()
			}
			<-done
			<-done
			for i, s := range kept {
				enc, err := s.AppendBinary(nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(enc, encs[i]) {
					t.Fatalf("merge %d: its encoding changed after other merges reused the scratch slices", i)
				}
			}
		})
	}
}

func mustNew(t *testing.T, p sketch.Params) sketch.Sketch {
	t.Helper()
	s, err := sketch.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
