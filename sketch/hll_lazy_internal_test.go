package sketch

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/axiomhq/hyperloglog"
)

// TestHLLSparseCheckMatchesLibrary: checkSparseEncoding accepts exactly
// the sparse encodings the library's UnmarshalBinary accepts (after
// decodeHLL's header checks), on encodings of real sketches (temporary
// set only, compressed list only, both, empty) and on corruptions of them:
// flipped bits and bytes, cuts, appended bytes, and counts, sizes and
// last values written over; and for those accepted, the keys read from
// the bytes are the library's.
func TestHLLSparseCheckMatchesLibrary(t *testing.T) {
	seed := uint64(2026_12_06)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	var valid [][]byte
	for _, p := range []uint8{4, 10, 14, 18} {
		for _, n := range []int{0, 1, 3, 60, 163, 164, 400, 3000} {
			for _, compact := range []bool{false, true} {
				sk, err := hyperloglog.NewSketch(p, true)
				if err != nil {
					t.Fatal(err)
				}
				for range n {
					sk.InsertHash(rng.Uint64())
				}
				if compact {
					sk.Estimate() // moves the temporary set into the list
				}
				enc, err := sk.AppendBinary(nil)
				if err != nil {
					t.Fatal(err)
				}
				if enc[3] == 1 {
					valid = append(valid, enc)
				}
			}
		}
	}
	accepted, rejected := 0, 0
	try := func(what string, enc []byte) {
		t.Helper()
		if len(enc) < 4 || enc[0] != 2 || enc[2] != 0 || enc[3] != 1 || enc[1] < 4 || enc[1] > 18 {
			return // decodeHLL's own header checks refuse it first
		}
		p := enc[1]
		lib, err := hyperloglog.NewSketch(p, true)
		if err != nil {
			t.Fatal(err)
		}
		libErr := lib.UnmarshalBinary(enc)
		ourErr := checkSparseEncoding(p, enc)
		if (libErr == nil) != (ourErr == nil) {
			t.Fatalf("%s (%d bytes %x): library says %v, checkSparseEncoding %v", what, len(enc), enc[:min(len(enc), 24)], libErr, ourErr)
		}
		if libErr != nil {
			rejected++
			return
		}
		accepted++
		ours, ok := appendSparseKeys(nil, enc)
		re, err := lib.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, ok2 := appendSparseKeys(nil, re)
		if !ok || !ok2 || !slices.Equal(sortedUnique(ours), sortedUnique(want)) {
			t.Fatalf("%s: keys read from the bytes differ from the library's", what)
		}
	}
	for vi, enc := range valid {
		try(fmt.Sprintf("valid %d", vi), enc)
		for c := range 200 {
			b := slices.Clone(enc)
			what := fmt.Sprintf("valid %d, corruption %d", vi, c)
			switch rng.IntN(7) {
			case 0: // a flipped bit
				i := rng.IntN(len(b))
				b[i] ^= 1 << rng.IntN(8)
			case 1: // a random byte
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			case 2: // cut
				b = b[:rng.IntN(len(b))]
			case 3: // bytes appended
				b = append(b, make([]byte, 1+rng.IntN(5))...)
			case 4, 5: // a header word of the set or list written over
				tmp := int(binary.BigEndian.Uint32(b[4:]))
				offs := []int{4, 8 + 4*tmp, 12 + 4*tmp, 16 + 4*tmp}
				off := offs[rng.IntN(len(offs))]
				if off+4 <= len(b) {
					v := binary.BigEndian.Uint32(b[off:])
					binary.BigEndian.PutUint32(b[off:], []uint32{0, v + 1, v - 1, rng.Uint32(), 1 << 25}[rng.IntN(5)])
				}
			default: // a byte of the stream's end set or cleared
				i := len(b) - 1 - rng.IntN(min(len(b), 8))
				b[i] = []byte{0, 0x80, 0x0f, 0x10, 0xff}[rng.IntN(5)]
			}
			try(what, b)
		}
	}
	t.Logf("%d accepted, %d rejected by both", accepted, rejected)
	if accepted < len(valid) || rejected < 1000 {
		t.Fatalf("too few cases: %d accepted, %d rejected", accepted, rejected)
	}
}

// TestHLLMergedEncodingsCheck: the sparse encodings MergeMany and
// mergeLargeSparse build (kept as a lazy result's bytes) pass
// checkSparseEncoding and the library's UnmarshalBinary, and give the
// estimate of repeated Merge.
func TestHLLMergedEncodingsCheck(t *testing.T) {
	seed := uint64(612)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	lazy := 0
	for _, c := range []struct{ parts, perPart int }{{2, 5}, {1, 2000}, {15, 200}, {40, 100}, {200, 100}} {
		var parts []*HLL
		for range c.parts + 1 {
			h, _ := NewHLL(14)
			for range 1 + rng.IntN(c.perPart) {
				h.InsertHash(rng.Uint64())
			}
			parts = append(parts, h)
		}
		got := parts[0].Clone().(*HLL)
		if err := got.MergeMany(parts[1:]...); err != nil {
			t.Fatal(err)
		}
		want := parts[0].Clone().(*HLL)
		for _, o := range parts[1:] {
			if err := want.Merge(o); err != nil {
				t.Fatal(err)
			}
		}
		if got.Estimate() != want.Estimate() {
			t.Fatalf("%+v: estimate %+v, want %+v", c, got.Estimate(), want.Estimate())
		}
		if got.sk != nil {
			continue
		}
		lazy++
		if err := checkSparseEncoding(14, got.enc); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		lib, _ := hyperloglog.NewSketch(14, true)
		if err := lib.UnmarshalBinary(got.enc); err != nil {
			t.Fatalf("%+v: the library refuses the merged bytes: %v", c, err)
		}
	}
	if lazy == 0 {
		t.Fatal("no merge result was lazy")
	}
}
