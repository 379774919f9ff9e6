package sketch

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/axiomhq/hyperloglog"
)

// TestSparseKeyMatchesLibrary: sparseKey is the key the library's sparse
// sketch stores for a hash, on random hashes and on hashes with long runs
// of zero bits (the ranked keys).
func TestSparseKeyMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range 20000 {
		x := rng.Uint64()
		switch i % 3 {
		case 1:
			x >>= rng.UintN(64)
		case 2:
			x &^= (1<<rng.UintN(64) - 1) << rng.UintN(30)
		}
		for _, p := range []uint8{4, 10, 14, 18} {
			sk, _ := hyperloglog.NewSketch(p, true)
			sk.InsertHash(x)
			enc, err := sk.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			keys, ok := appendSparseKeys(nil, enc)
			if !ok || len(keys) != 1 || keys[0] != sparseKey(x, p) {
				t.Fatalf("x=%#x p=%d: library keys %v, sparseKey %#x", x, p, keys, sparseKey(x, p))
			}
		}
	}
}

// TestHLLSkipsRepeatsSameAnswers: an HLL that skips repeated keys answers
// as the library sketch fed every hash: the same estimate and registers at
// every checkpoint (sparse, at the switch to dense, dense), after an
// encode/decode round trip and after a merge.
func TestHLLSkipsRepeatsSameAnswers(t *testing.T) {
	streams := map[string]func(rng *rand.Rand) func() uint64{
		"zipf users": func(rng *rand.Rand) func() uint64 {
			z := rand.NewZipf(rng, 1.1, 1, 99_999)
			return func() uint64 { return HashString(string(rune(z.Uint64() + 0x10000))) }
		},
		"few items": func(rng *rand.Rand) func() uint64 {
			return func() uint64 { return HashString(string(rune(rng.IntN(3000) + 0x10000))) }
		},
	}
	for name, stream := range streams {
		for _, p := range []uint8{10, 14} {
			next := stream(rand.New(rand.NewPCG(uint64(p), 9)))
			h, _ := NewHLL(p)
			ref, _ := hyperloglog.NewSketch(p, true)
			made := false
			for i := 1; i <= 60_000; i++ {
				x := next()
				h.InsertHash(x)
				ref.InsertHash(x)
				made = made || h.recent != nil
				if i%499 == 0 || i == 60_000 {
					checkSameHLL(t, name, p, i, h, ref)
				}
			}
			if !made && p == 14 { // at p=10 the sketch is dense before recentAfter inserts
				t.Errorf("%s p=%d: the table was never made", name, p)
			}
			blob, err := h.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(blob)
			if err != nil {
				t.Fatal(err)
			}
			checkSameHLL(t, name+" decoded", p, 0, d.(*HLL), ref)
			other, _ := NewHLL(p)
			otherRef, _ := hyperloglog.NewSketch(p, true)
			for range 5000 {
				x := next()
				other.InsertHash(x)
				otherRef.InsertHash(x)
			}
			if err := other.Merge(h); err != nil {
				t.Fatal(err)
			}
			if err := otherRef.Merge(ref); err != nil {
				t.Fatal(err)
			}
			checkSameHLL(t, name+" merged", p, 0, other, otherRef)
		}
	}
}

func checkSameHLL(t *testing.T, name string, p uint8, i int, h *HLL, ref *hyperloglog.Sketch) {
	t.Helper()
	if got, want := h.Estimate().Estimate, float64(ref.Clone().Estimate()); got != want {
		t.Fatalf("%s p=%d after %d: estimate %v, library %v", name, p, i, got, want)
	}
	d, _ := hyperloglog.NewSketch(p, false)
	if err := d.Merge(ref.Clone()); err != nil {
		t.Fatal(err)
	}
	b, _ := d.MarshalBinary()
	if !bytes.Equal(h.Registers(), b[8:]) {
		t.Fatalf("%s p=%d after %d: registers differ from the library's", name, p, i)
	}
}
