package sketchd

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sketchd/sketchd/sketch"
)

const specYAML = `
name: pageviews
subject: events.pageviews
time: {field: ts, format: unix_ms}
group_by: [country, device.type]
granularity: 1m
max_out_of_orderness: 10s
allowed_lateness: 2m
idle_timeout: 0s
late: dead_letter
retention: 7d
aggregates:
  users:   {sketch: hll, field: user_id, precision: 12}
  urls:    {sketch: cms, field: url, epsilon: 0.001, delta: 0.01, top_k: 20}
  latency: {sketch: tdigest, field: latency_ms}
  sample:  {sketch: reservoir, size: 32}
`

func TestStreamYAMLJSONRoundTrip(t *testing.T) {
	var fromYAML Stream
	if err := yaml.Unmarshal([]byte(specYAML), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := fromYAML.Validate(); err != nil {
		t.Fatal(err)
	}
	// Defaults for omitted fields, explicit zero kept.
	if !fromYAML.JetStream || fromYAML.MaxFuture != Duration(time.Hour) || fromYAML.IdleTimeout != 0 {
		t.Errorf("defaults not applied or zero not kept: %+v", fromYAML)
	}
	if fromYAML.Retention != Duration(168*time.Hour) {
		t.Errorf("retention %s, want 168h", fromYAML.Retention)
	}
	if fromYAML.Aggregates["latency"].Compression != DefaultCompression || fromYAML.Aggregates["users"].Precision != 12 {
		t.Errorf("aggregate defaults %+v", fromYAML.Aggregates)
	}
	if fromYAML.LateSubject != "sketchd.late.pageviews" || fromYAML.JetStreamStream != "SKETCHD_PAGEVIEWS" {
		t.Errorf("derived names %q %q", fromYAML.LateSubject, fromYAML.JetStreamStream)
	}
	j, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ParseStreamJSON(j)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, fromJSON) {
		t.Errorf("JSON round trip differs:\n%+v\n%+v", fromYAML, fromJSON)
	}
	y, err := yaml.Marshal(fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	var again Stream
	if err := yaml.Unmarshal(y, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, again) {
		t.Errorf("YAML round trip differs:\n%+v\n%+v", fromYAML, again)
	}
}

func TestStreamUnknownFields(t *testing.T) {
	var s Stream
	err := yaml.Unmarshal([]byte("name: x\nsubject: a\ngranularty: 1m\n"), &s)
	if err == nil || !strings.Contains(err.Error(), `"granularty"`) {
		t.Errorf("yaml typo: err = %v", err)
	}
	err = yaml.Unmarshal([]byte("name: x\naggregates:\n  u: {sketch: hll, feild: x}\n"), &s)
	if err == nil || !strings.Contains(err.Error(), `"feild"`) {
		t.Errorf("nested yaml typo: err = %v", err)
	}
	if _, err := ParseStreamJSON([]byte(`{"name":"x","subjct":"a"}`)); err == nil || !strings.Contains(err.Error(), "subjct") {
		t.Errorf("json typo: err = %v", err)
	}
}

func TestStreamValidate(t *testing.T) {
	valid := func() Stream {
		var s Stream
		if err := yaml.Unmarshal([]byte(specYAML), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name   string
		mutate func(*Stream)
		fields []string
	}{
		{"bad name", func(s *Stream) { s.Name = "a b" }, []string{"name"}},
		{"no subject", func(s *Stream) { s.Subject = "" }, []string{"subject"}},
		{"bad wildcard", func(s *Stream) { s.Subject = "a.>.b" }, []string{"subject"}},
		{"zero granularity", func(s *Stream) { s.Granularity = 0 }, []string{"granularity"}},
		{"granularity not dividing a day", func(s *Stream) { s.Granularity = Duration(7 * time.Minute) }, []string{"granularity"}},
		{"fractional lateness", func(s *Stream) { s.AllowedLateness = Duration(1500 * time.Millisecond) }, []string{"allowed_lateness"}},
		{"negative ooo", func(s *Stream) { s.MaxOutOfOrderness = -1 }, []string{"max_out_of_orderness"}},
		{"duplicate dimension", func(s *Stream) { s.GroupBy = []string{"a", "a"} }, []string{"group_by[1]"}},
		{"empty path segment", func(s *Stream) { s.GroupBy = []string{"a..b"} }, []string{"group_by[0]"}},
		{"bad time format", func(s *Stream) { s.Time.Format = "unix_days" }, []string{"time.format"}},
		{"unknown late policy", func(s *Stream) { s.Late = "keep" }, []string{"late"}},
		{"retention shorter than lateness", func(s *Stream) { s.Retention = Duration(2 * time.Minute) }, []string{"retention"}},
		{"unknown sketch", func(s *Stream) { s.Aggregates["x"] = Aggregate{Sketch: "bloom", Field: "f"} }, []string{"aggregates.x.sketch"}},
		{"hll precision", func(s *Stream) { a := s.Aggregates["users"]; a.Precision = 20; s.Aggregates["users"] = a }, []string{"aggregates.users.precision"}},
		{"param of another kind", func(s *Stream) { a := s.Aggregates["users"]; a.TopK = 3; s.Aggregates["users"] = a }, []string{"aggregates.users.top_k"}},
		{"cms table too large for a pane", func(s *Stream) { a := s.Aggregates["urls"]; a.Epsilon = 1e-5; s.Aggregates["urls"] = a }, []string{"aggregates.urls.epsilon"}},
		{"missing field", func(s *Stream) { a := s.Aggregates["latency"]; a.Field = ""; s.Aggregates["latency"] = a }, []string{"aggregates.latency.field"}},
		{"no aggregates", func(s *Stream) { s.Aggregates = nil }, []string{"aggregates"}},
		// Five reservoirs of 10,000 can reach 5 × 442 KiB per pane.
		{"reservoirs too large for a pane", func(s *Stream) {
			for _, n := range []string{"big1", "big2", "big3", "big4", "big5"} {
				s.Aggregates[n] = Aggregate{Sketch: KindReservoir, Size: 10000}
			}
		}, []string{"aggregates.big1"}},
		// A t-digest of compression 1000 (up to 1.8 MiB) beside the rest.
		{"tdigest too large beside the others", func(s *Stream) {
			a := s.Aggregates["latency"]
			a.Compression = 1000
			s.Aggregates["latency"] = a
		}, []string{"aggregates.latency"}},
		{"two problems", func(s *Stream) { s.Name = ""; s.Granularity = 0 }, []string{"name", "granularity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.mutate(&s)
			err := s.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			var got []string
			for _, e := range unjoin(err) {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *FieldError", e)
				}
				got = append(got, fe.Field)
			}
			for _, f := range tt.fields {
				if !slices.Contains(got, f) {
					t.Errorf("errors name %v, want %q among them (%v)", got, f, err)
				}
			}
		})
	}
	if s := valid(); s.Validate() != nil {
		t.Fatal(s.Validate())
	}
	// The largest table allowed is accepted: ε = 1e-4, δ = 0.01 is
	// 32768 × 5 counters (640 KiB).
	s := valid()
	a := s.Aggregates["urls"]
	a.Epsilon = 1e-4
	s.Aggregates["urls"] = a
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamValidatePaneBound: every aggregate alone, at its largest
// parameters, fits a pane (the bound refuses combinations only), and the
// bound error is a *FieldError naming the largest aggregate and nothing
// else.
func TestStreamValidatePaneBound(t *testing.T) {
	base := func(aggs map[string]Aggregate) Stream {
		return Stream{Name: "s", Subject: "a.b", Granularity: Duration(time.Minute), MaxFuture: Duration(time.Hour),
			Late: LateDrop, Retention: Duration(time.Hour), Aggregates: aggs}
	}
	for _, a := range []Aggregate{
		{Sketch: KindHLL, Field: "f", Precision: 18},
		{Sketch: KindCMS, Field: "f", Epsilon: 1e-4, TopK: 1000},
		{Sketch: KindTDigest, Field: "f", Compression: 1000},
		{Sketch: KindReservoir, Size: 10000, Weight: "w"},
	} {
		if a.Sketch == KindCMS {
			// The largest table under MaxCountMinTableBytes: ε = 1e-4 (w =
			// 32768), δ = e^-8 (d = 8): exactly 1 MiB.
			a.Delta = 0.00034
		}
		s := base(map[string]Aggregate{"x": a})
		if err := s.Validate(); err != nil {
			t.Errorf("%+v (bound %d bytes): %v", a, a.MaxEncodedBytes(), err)
		}
		t.Logf("%s: bound %d bytes", a.Sketch, a.MaxEncodedBytes())
	}
	s := base(map[string]Aggregate{
		"a": {Sketch: KindTDigest, Field: "f", Compression: 1000},
		"b": {Sketch: KindHLL, Field: "f", Precision: 18},
		"c": {Sketch: KindReservoir, Size: 32},
	})
	err := s.Validate()
	errs := unjoin(err)
	var fe *FieldError
	if len(errs) != 1 || !errors.As(errs[0], &fe) || fe.Field != "aggregates.a" || !strings.Contains(fe.Msg, "KiB a pane may hold") {
		t.Fatalf("Validate = %v, want one *FieldError for aggregates.a", err)
	}
	t.Log(fe)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, vals := range [][]string{nil, {""}, {"DE", "ios"}, {"a\x00b", "", strings.Repeat("x", 300)}} {
		k := EncodeKey(vals...)
		got, err := DecodeKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, vals) && !(len(got) == 0 && len(vals) == 0) {
			t.Errorf("DecodeKey(EncodeKey(%q)) = %q", vals, got)
		}
	}
	if EncodeKey("ab", "c") == EncodeKey("a", "bc") {
		t.Error("key encoding is ambiguous")
	}
	for _, bad := range []string{"\x05ab", "\xff"} {
		if _, err := DecodeKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("DecodeKey(%q) err = %v", bad, err)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"90s", 90 * time.Second, "1m30s"},
		{"1m", time.Minute, "1m"},
		{"168h", 168 * time.Hour, "168h"},
		{"7d", 168 * time.Hour, "168h"},
		{"0s", 0, "0s"},
		{"1h30m", 90 * time.Minute, "1h30m"},
	}
	for _, tt := range tests {
		d, err := ParseDuration(tt.in)
		if err != nil || d.Std() != tt.want || d.String() != tt.out {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s printed %q", tt.in, d, err, tt.want, tt.out)
		}
	}
	for _, bad := range []string{"", "1x", "-d", "1.5d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

// storeMaxEntry is the store's cap on one pane (key + value),
// store.MaxPaneEntryBytes: 90% of Badger's 15% batch limit of a 16 MiB
// memtable (internal/store/commit.go).
const storeMaxEntry = (16 << 20) * 15 / 100 * 9 / 10

// TestMaxEncodedBytesBoundsSketches fills real sketches at extreme
// parameters with hostile data (long items, large counts, many distinct
// values) and checks that the encoding never exceeds MaxEncodedBytes, at
// many points of their growth.
func TestMaxEncodedBytesBoundsSketches(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	check := func(a Aggregate, s sketch.Sketch, when string) {
		t.Helper()
		b, err := s.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if max := a.MaxEncodedBytes(); len(b) > max {
			t.Fatalf("%s %+v %s: %d bytes encoded, bound %d", a.Sketch, a, when, len(b), max)
		}
	}
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte('a' + rng.IntN(26))
	}
	item := func(n int) []byte { // a distinct item of n bytes
		it := big[rng.IntN(len(big)-n+1):][:n:n]
		it = slices.Clone(it)
		binary.LittleEndian.PutUint64(it, rng.Uint64())
		return it
	}

	for _, p := range []int{4, 10, 18} {
		a := Aggregate{Sketch: KindHLL, Field: "f", Precision: p}
		h, _ := sketch.NewHLL(uint8(p))
		next := 1
		for i := 1; i <= 3<<p; i++ {
			h.InsertHash(rng.Uint64())
			if i == next || i == 3<<p {
				check(a, h, fmt.Sprintf("after %d inserts", i))
				next = next*9/8 + 1
			}
		}
	}

	for _, a := range []Aggregate{
		{Sketch: KindCMS, Field: "f", Epsilon: 1e-4, Delta: 0.00034, TopK: 1000}, // 1 MiB table
		{Sketch: KindCMS, Field: "f", Epsilon: 0.01, Delta: 0.01, TopK: 1},       // tiny table, 16 KiB items
		{Sketch: KindCMS, Field: "f", TopK: 10},
	} {
		a.Normalize()
		c, _ := sketch.NewCountMin(a.Epsilon, a.Delta, a.TopK)
		lim := sketch.CountMinCandidateItemBytes(a.TopK)
		for i := range 20000 {
			var it []byte
			switch i % 3 {
			case 0:
				it = item(lim) // the longest candidate
			case 1:
				it = item(min(lim+1+rng.IntN(64<<10-lim), 64<<10)) // too long for one
			default:
				it = item(8)
			}
			c.Add(sketch.Hash(it), it, 1+uint64(rng.IntN(1<<31)))
			if i%997 == 0 {
				check(a, c, fmt.Sprintf("after %d adds", i+1))
			}
		}
		check(a, c, "at the end")
		if c.Exact() {
			t.Fatalf("%+v: still exact", a)
		}
	}

	for _, comp := range []float64{10, 100, 1000} {
		a := Aggregate{Sketch: KindTDigest, Field: "f", Compression: comp}
		d, _ := sketch.NewTDigest(comp)
		for i := range 300000 {
			_ = d.AddWeighted(rng.NormFloat64()*1e6, 1+uint64(rng.IntN(1<<40)))
			if i%49999 == 0 {
				check(a, d, fmt.Sprintf("after %d adds", i+1))
			}
		}
		check(a, d, "at the end")
	}

	for _, weighted := range []bool{false, true} {
		for _, size := range []int{1, 32, 10000} {
			a := Aggregate{Sketch: KindReservoir, Size: size}
			if weighted {
				a.Weight = "w"
			}
			r, _ := sketch.NewReservoir(size, weighted)
			for i := range 3 * size {
				n := 1 + rng.IntN(64<<10)
				if i%2 == 0 {
					n = 1 + rng.IntN(24) // small items: Size binds
				}
				r.Add(rng.Uint64(), big[:n], 1+rng.Float64())
			}
			check(a, r, "")
		}
	}
}

// TestPaneWithHugeReservoirFits: a pane of the spec's aggregates with a
// 10,000-item reservoir fed 10,000 events of 60 KiB (585 MiB offered)
// encodes under MaxPaneSketchBytes and the store's cap, and the
// reservoir says that its byte budget limited it.
func TestPaneWithHugeReservoirFits(t *testing.T) {
	var s Stream
	if err := yaml.Unmarshal([]byte(specYAML), &s); err != nil {
		t.Fatal(err)
	}
	s.Aggregates["sample"] = Aggregate{Sketch: KindReservoir, Size: 10000}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	ev := make([]byte, 60<<10)
	for i := range ev {
		ev[i] = byte('a' + rng.IntN(26))
	}
	total, bound := 0, 0
	for _, name := range s.AggregateNames() {
		a := s.Aggregates[name]
		a.Normalize()
		var sk sketch.Sketch
		switch a.Sketch {
		case KindHLL:
			h, _ := sketch.NewHLL(uint8(a.Precision))
			for range 100000 {
				h.InsertHash(rng.Uint64())
			}
			sk = h
		case KindCMS:
			c, _ := sketch.NewCountMin(a.Epsilon, a.Delta, a.TopK)
			for range 100000 {
				it := ev[:1+rng.IntN(2000)]
				c.Add(sketch.Hash(it), it, 1)
			}
			sk = c
		case KindTDigest:
			d, _ := sketch.NewTDigest(a.Compression)
			for range 100000 {
				_ = d.Add(rng.ExpFloat64())
			}
			sk = d
		case KindReservoir:
			r, _ := sketch.NewReservoir(a.Size, false)
			for i := range 10000 {
				binary.LittleEndian.PutUint64(ev, uint64(i))
				r.Add(rng.Uint64(), ev, 0)
			}
			if !r.Truncated() || r.Population() != 10000 || r.Bytes() > sketch.MaxReservoirBytes {
				t.Fatalf("reservoir: truncated %v, population %d, %d bytes", r.Truncated(), r.Population(), r.Bytes())
			}
			t.Logf("reservoir: %d items, %d bytes, truncated", len(r.Sample()), r.Bytes())
			sk = r
		}
		b, err := sk.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		total += 4 + len(b)
		bound += 4 + a.MaxEncodedBytes()
	}
	t.Logf("pane sketches %d bytes; bound %d; limit %d; store cap %d", total, bound, MaxPaneSketchBytes, storeMaxEntry)
	if total > bound || bound > MaxPaneSketchBytes || MaxPaneSketchBytes+(32<<10)+64 > storeMaxEntry {
		t.Fatalf("pane %d bytes, bound %d, limit %d, store cap %d", total, bound, MaxPaneSketchBytes, storeMaxEntry)
	}
}
