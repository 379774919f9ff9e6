package sketchd

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
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
