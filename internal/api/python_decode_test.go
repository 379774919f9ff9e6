package api

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// decodeScript is the documented Python decoder (docs/format-sketches.md).
var decodeScript = filepath.Join("..", "..", "docs", "examples", "decode_sketch.py")

// pyDecoded is what decode_sketch.py prints.
type pyDecoded struct {
	Kind           string             `json:"kind"`
	Format         string             `json:"format"`
	Count          uint64             `json:"count"`
	Precision      int                `json:"precision"`
	Representation string             `json:"representation"`
	Estimate       float64            `json:"estimate"`
	Compression    float64            `json:"compression"`
	Min, Max       float64            `json:"-"`
	MinP           *float64           `json:"min"`
	MaxP           *float64           `json:"max"`
	Quantiles      map[string]float64 `json:"quantiles"`
}

// runDecoder runs the Python decoder on blob. python3 must be installed:
// the test fails, loudly, without it (CI installs it: .ci/run).
func runDecoder(t *testing.T, blob []byte, args ...string) pyDecoded {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not installed: this test runs the documented Python decoder (apt-get install python3): %v", err)
	}
	f := filepath.Join(t.TempDir(), "export.bin")
	if err := os.WriteFile(f, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, append([]string{decodeScript, f}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok { //nolint:errorlint // the one type Output returns
			stderr = ee.Stderr
		}
		t.Fatalf("decode_sketch.py: %v\n%s", err, stderr)
	}
	var d pyDecoded
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("decode_sketch.py printed %s: %v", out, err)
	}
	if d.MinP != nil {
		d.Min, d.Max = *d.MinP, *d.MaxP
	}
	return d
}

// TestPythonDecoder runs docs/examples/decode_sketch.py (stdlib only) on
// real exports of the sketch endpoint through the router over real Badger:
// a sparse HLL (the shared fixture's 700 users at p = 14), a dense one (10,000
// users at p = 10), a t-digest in sketchd's format and the same digest in
// the t-digest exchange format. The HLL estimates must be sketchd's
// exactly; the digests' count, min and max exactly (sketchd's format) and
// their quantiles within the digest's rank error of sketchd's answer.
func TestPythonDecoder(t *testing.T) {
	sf := newStoreFixture(t)
	kf := newKindsFixture(t)
	hlls := []struct {
		name, repr string
		blob       []byte
	}{
		{"sparse", "sparse", sf.get(t, "/v1/streams/pageviews/aggregates/users/sketch?"+fixtureRange()).body},
		{"dense", "dense", kf.get(t, "/v1/streams/shop/aggregates/visits/sketch?"+kindsRange).body},
	}
	for _, h := range hlls {
		sk, err := sketch.Decode(h.blob)
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		want := sk.(*sketch.HLL).Estimate().Estimate
		d := runDecoder(t, h.blob)
		t.Logf("hll %s: python %+v, sketchd estimate %g", h.name, d, want)
		if d.Kind != "hll" || d.Representation != h.repr || d.Estimate != want || d.Count != sk.Count() {
			t.Errorf("hll %s: python decoded %+v, sketchd says estimate %g count %d", h.name, d, want, sk.Count())
		}
	}

	lat := "/v1/streams/pageviews/aggregates/latency/sketch?" + fixtureRange()
	blob := sf.get(t, lat).body
	sk, err := sketch.Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	td := sk.(*sketch.TDigest)
	exch := sf.get(t, lat+"&format=tdigest").body
	for _, c := range []struct {
		name string
		d    pyDecoded
	}{{"sketchd format", runDecoder(t, blob)}, {"exchange format", runDecoder(t, exch, "--tdigest")}} {
		d := c.d
		if d.Kind != "tdigest" || d.Count != td.Count() || d.Compression != td.Params().Compression {
			t.Fatalf("%s: python decoded %+v", c.name, d)
		}
		if c.name == "sketchd format" && (d.Min != td.Min() || d.Max != td.Max()) {
			t.Errorf("%s: min/max %g %g, want %g %g", c.name, d.Min, d.Max, td.Min(), td.Max())
		}
		for qs, v := range d.Quantiles {
			q, _ := strconv.ParseFloat(qs, 64)
			e := td.Quantile(q)
			// The Python value's rank in sketchd's digest is within the
			// stated rank error (plus the float32 rounding of the exchange).
			if r := td.CDF(v); math.Abs(r-q) > e.RankError+1e-3 {
				t.Errorf("%s: q=%g: python %g has rank %g in sketchd's digest (value %g ± %g)", c.name, q, v, r, e.Value, e.RankError)
			}
		}
		t.Logf("tdigest %s: count %d, %d quantiles agree", c.name, d.Count, len(d.Quantiles))
	}
}

// fixtureRange is the shared fixture's whole span as from/to parameters.
func fixtureRange() string {
	return "from=" + strconv.FormatInt(t0.Unix(), 10) + "&to=" + strconv.FormatInt(t0.Add(fixtureSpan).Unix(), 10)
}
