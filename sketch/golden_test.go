package sketch_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// Regenerate with: go test ./sketch -run TestGolden -update (package first)
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

type goldenCase struct {
	name  string
	build func() sketch.Sketch
}

// goldenCases build, from fixed streams, one small and one large sketch
// per kind (and the weighted reservoir).
func goldenCases() []goldenCase {
	hll := func(n int) func() sketch.Sketch {
		return func() sketch.Sketch {
			h, _ := sketch.NewHLL(14)
			for i := range n {
				h.Insert(itemOf(uint64(i % (n/2 + 1))))
			}
			return h
		}
	}
	cms := func(n int) func() sketch.Sketch {
		return func() sketch.Sketch {
			c, _ := sketch.NewCountMin(0.01, 0.01, 5)
			for _, v := range zipfStream(1, n, 10000) {
				it := itemOf(v)
				c.Add(sketch.Hash(it), it, 1)
			}
			return c
		}
	}
	td := func(n int) func() sketch.Sketch {
		return func() sketch.Sketch {
			t, _ := sketch.NewTDigest(50)
			for i := range n {
				_ = t.Add(math.Exp(math.Sin(float64(i)) * 3))
			}
			return t
		}
	}
	res := func(n int, weighted bool) func() sketch.Sketch {
		return func() sketch.Sketch {
			r, _ := sketch.NewReservoir(8, weighted)
			for i := range n {
				r.Add(splitmix64(uint64(i)), itemOf(uint64(i)), float64(1+i%4))
			}
			return r
		}
	}
	theta := func(n int) func() sketch.Sketch {
		return func() sketch.Sketch {
			t, _ := sketch.NewTheta(64)
			for i := range n {
				t.Insert(itemOf(uint64(i % (n/2 + 1))))
			}
			return t
		}
	}
	dd := func(n int) func() sketch.Sketch {
		return func() sketch.Sketch {
			d, _ := sketch.NewDDSketch(0.02)
			for i := range n {
				_ = d.Add(math.Exp(math.Sin(float64(i))*3) * float64(1-2*(i%7/6)))
			}
			return d
		}
	}
	return []goldenCase{
		{"theta-empty", theta(0)}, {"theta-small", theta(10)}, {"theta-large", theta(30000)},
		{"ddsketch-empty", dd(0)}, {"ddsketch-small", dd(10)}, {"ddsketch-large", dd(20000)},
		{"hll-empty", hll(0)}, {"hll-small", hll(10)}, {"hll-large", hll(30000)},
		{"cms-small", cms(10)}, {"cms-large", cms(20000)},
		{"tdigest-empty", td(0)}, {"tdigest-small", td(10)}, {"tdigest-large", td(20000)},
		{"reservoir-small", res(5, false)}, {"reservoir-large", res(10000, false)},
		{"reservoir-weighted", res(10000, true)},
	}
}

// answers renders what a sketch answers, for the golden .txt files.
func answers(s sketch.Sketch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind=%s params=%+v count=%d\n", s.Kind(), s.Params(), s.Count())
	switch x := s.(type) {
	case *sketch.HLL:
		fmt.Fprintf(&b, "estimate=%+v\n", x.Estimate())
	case *sketch.CountMin:
		fmt.Fprintf(&b, "exact=%v epsilon=%g delta=%g\n", x.Exact(), x.Epsilon(), x.Delta())
		for _, v := range []uint64{0, 1, 2, 50, 9999} {
			e := x.Estimate(itemOf(v))
			fmt.Fprintf(&b, "estimate %s=%d [%d,%d] ±%d @%g\n", e.Item, e.Estimate, e.Lower, e.Upper, e.ErrorBound, e.Confidence)
		}
		for _, e := range x.TopK(5) {
			fmt.Fprintf(&b, "top %s=%d [%d,%d]\n", e.Item, e.Estimate, e.Lower, e.Upper)
		}
	case *sketch.TDigest:
		fmt.Fprintf(&b, "min=%g max=%g\n", x.Min(), x.Max())
		for _, q := range tdQs {
			e := x.Quantile(q)
			fmt.Fprintf(&b, "q%g=%.17g ±%.6g [%.17g, %.17g] cdf=%.17g\n", q, e.Value, e.RankError, e.Lower, e.Upper, x.CDF(e.Value))
		}
	case *sketch.Theta:
		fmt.Fprintf(&b, "estimate=%+v\n", x.Estimate())
	case *sketch.DDSketch:
		fmt.Fprintf(&b, "min=%g max=%g bins=%d\n", x.Min(), x.Max(), x.Bins())
		for _, q := range tdQs {
			e := x.Quantile(q)
			fmt.Fprintf(&b, "q%g=%.17g [%.17g, %.17g]\n", q, e.Value, e.Lower, e.Upper)
		}
	case *sketch.Reservoir:
		fmt.Fprintf(&b, "population=%d tags=%x\n", x.Population(), x.Tags())
		for _, it := range x.Sample() {
			fmt.Fprintf(&b, "sample %s\n", it)
		}
	}
	return b.String()
}

// TestGolden decodes the wire-version-1 golden blobs and checks their
// answers; for canonical kinds it also checks that today's encoder writes
// the same bytes.
func TestGolden(t *testing.T) {
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			bin := filepath.Join("testdata", "v1", gc.name+".bin")
			txt := filepath.Join("testdata", "v1", gc.name+".txt")
			fresh := gc.build()
			if *update {
				b, err := fresh.AppendBinary(nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(bin, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(txt, []byte(answers(fresh)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			blob, err := os.ReadFile(bin)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			want, err := os.ReadFile(txt)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sketch.Decode(blob)
			if err != nil {
				t.Fatalf("Decode(%s): %v", bin, err)
			}
			if got := answers(s); got != string(want) {
				t.Errorf("answers of %s:\n%s\nwant:\n%s", bin, got, want)
			}
			if got := answers(fresh); got != string(want) {
				t.Errorf("answers of a freshly built sketch changed:\n%s\nwant:\n%s", got, want)
			}
			if s.Kind() != sketch.KindHLL {
				b, _ := fresh.AppendBinary(nil)
				if !bytes.Equal(b, blob) {
					t.Errorf("the encoder no longer writes %s byte for byte", bin)
				}
			}
		})
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to a
// blob that decodes to the same answers, and survives a merge and queries.
// Seeds: the golden files. Run: go test ./sketch -run '^$' -fuzz FuzzDecode
func FuzzDecode(f *testing.F) {
	for _, gc := range goldenCases() {
		if b, err := os.ReadFile(filepath.Join("testdata", "v1", gc.name+".bin")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("SK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		// Also with a valid CRC, so that mutations reach the kind decoders.
		if len(b) >= 22 {
			checkDecode(t, reseal(bytes.Clone(b)))
		}
	})
}

func checkDecode(t *testing.T, b []byte) {
	{
		s, err := sketch.Decode(b)
		if err != nil {
			if s != nil {
				t.Fatalf("Decode returned a sketch and an error")
			}
			return
		}
		a := answers(s)
		b2, err := s.AppendBinary(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		s2, err := sketch.Decode(b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if a2 := answers(s2); a2 != a {
			t.Fatalf("answers changed across re-encoding:\n%s\nvs\n%s", a, a2)
		}
		c := s.Clone()
		if err := c.Merge(s2); errors.Is(err, sketch.ErrOverflow) {
			// A count near 2^64 cannot double: refused, c unchanged.
			if c.Count() != s.Count() {
				t.Fatalf("failed merge changed the count: %d, was %d", c.Count(), s.Count())
			}
		} else if err != nil {
			t.Fatalf("merge with itself: %v", err)
		}
		_ = answers(c)
		_ = c.Size()
	}
}
