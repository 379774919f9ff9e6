package ingest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// testSpec is the benchmark stream: time ts (rfc3339), group_by [country,
// device], aggregates latency (tdigest latency_ms), sample (reservoir, whole
// event), urls (cms url), users (hll user_id) — in AggregateNames order.
func testSpec() sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name = "pageviews"
	s.Subject = "events.pageviews"
	s.Time = sketchd.TimeSpec{Field: "ts", Format: sketchd.TimeRFC3339}
	s.GroupBy = []string{"country", "device"}
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user_id"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "latency_ms"},
		"sample":  {Sketch: sketchd.KindReservoir},
	}
	s.Normalize()
	return s
}

const benchEvent = `{"ts":"2026-11-25T10:00:00.123Z","country":"DE","device":"mobile","user_id":"u-123456","url":"/products/42","latency_ms":123.4,"extra":{"a":1}}`

// val is a copied sketchd.Value; vals print compactly in failures.
type val struct {
	Present bool
	Bytes   string
	Num     float64
}

func (v val) String() string {
	if !v.Present {
		return "-"
	}
	if v.Bytes != "" {
		return fmt.Sprintf("%q/%g", v.Bytes, v.Num)
	}
	return fmt.Sprint(v.Num)
}

// res is one callback, copied out of the decoder's scratch.
type res struct {
	OK     bool
	Key    []string
	Time   int64
	Pos    uint64
	Vals   []val
	Raw    string
	Reason Reason
	Detail string
}

func (r res) String() string {
	if r.OK {
		return fmt.Sprintf("ok key=%q t=%d pos=%d vals=%v", r.Key, r.Time, r.Pos, r.Vals)
	}
	return fmt.Sprintf("bad %s raw=%q (%s)", r.Reason, r.Raw, r.Detail)
}

func decodeAll(t testing.TB, d *Decoder, msg string, seq uint64, now int64) []res {
	t.Helper()
	var out []res
	d.Decode([]byte(msg), seq, now, func(ev *sketchd.Event) {
		k, err := sketchd.DecodeKey(ev.Key)
		if err != nil {
			t.Fatalf("bad key %q: %v", ev.Key, err)
		}
		r := res{OK: true, Key: k, Time: ev.Time, Pos: ev.Pos}
		for _, v := range ev.Values {
			r.Vals = append(r.Vals, val{v.Present, string(v.Bytes), v.Num})
		}
		out = append(out, r)
	}, func(raw []byte, reason Reason, detail string) {
		out = append(out, res{Raw: string(raw), Reason: reason, Detail: detail})
	})
	return out
}

func mustDecoder(t testing.TB, s sketchd.Stream, o DecodeOptions) *Decoder {
	t.Helper()
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatalf("spec: %v", err)
	}
	d, err := NewDecoder(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// one decodes a single-event message and returns its result.
func one(t *testing.T, d *Decoder, msg string) res {
	t.Helper()
	out := decodeAll(t, d, msg, 0, 0)
	if len(out) != 1 {
		t.Fatalf("Decode(%q): %d results, want 1: %v", msg, len(out), out)
	}
	return out[0]
}

func TestDecodeBenchEvent(t *testing.T) {
	d := mustDecoder(t, testSpec(), DecodeOptions{})
	got := one(t, d, benchEvent)
	want := res{OK: true, Key: []string{"DE", "mobile"},
		Time: time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC).UnixNano(),
		Vals: []val{{true, "", 123.4}, {true, benchEvent, 0}, {true, "/products/42", 0}, {true, "u-123456", 0}}}
	if got.String() != want.String() {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func timeSpec(field string, f sketchd.TimeFormat) sketchd.Stream {
	s := testSpec()
	s.Time = sketchd.TimeSpec{Field: field, Format: f}
	s.GroupBy = nil
	s.Aggregates = map[string]sketchd.Aggregate{"n": {Sketch: sketchd.KindReservoir}}
	return s
}

func TestDecodeTime(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) int64 {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC).UnixNano()
	}
	tests := []struct {
		format sketchd.TimeFormat
		lit    string // JSON value of the time field; "" = absent
		want   int64
		reason Reason
	}{
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00Z"`, utc(2026, 11, 25, 10, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00.123Z"`, utc(2026, 11, 25, 10, 0, 0, 123e6), ""},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00.123456789Z"`, utc(2026, 11, 25, 10, 0, 0, 123456789), ""},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00.1234567891234Z"`, utc(2026, 11, 25, 10, 0, 0, 123456789), ""},
		{sketchd.TimeRFC3339, `"2026-11-25T12:30:00+02:30"`, utc(2026, 11, 25, 10, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2026-11-25T04:30:00-05:30"`, utc(2026, 11, 25, 10, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2026-11-25t10:00:00z"`, utc(2026, 11, 25, 10, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2026-11-25 10:00:00Z"`, utc(2026, 11, 25, 10, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"1969-12-31T23:59:59.5Z"`, -5e8, ""},
		{sketchd.TimeRFC3339, `"1900-01-01T00:00:00Z"`, utc(1900, 1, 1, 0, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2024-02-29T00:00:00Z"`, utc(2024, 2, 29, 0, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2000-02-29T00:00:00Z"`, utc(2000, 2, 29, 0, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2262-04-11T23:47:16.854775807Z"`, math.MaxInt64, ""},
		{sketchd.TimeRFC3339, `"1677-09-21T00:12:43.145224192Z"`, math.MinInt64, ""},
		{sketchd.TimeRFC3339, `"\u0032026-11-25T10:00:00Z"`, utc(2026, 11, 25, 10, 0, 0, 0), ""},
		{sketchd.TimeRFC3339, `"2262-04-11T23:47:16.854775808Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"1677-09-21T00:12:43.145224191Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"9999-12-31T23:59:59Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-02-29T00:00:00Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"1900-02-29T00:00:00Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-13-01T00:00:00Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T24:00:00Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:60Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00.Z"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00+2:00"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00+24:00"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25T10:00:00Zjunk"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `"2026-11-25"`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `""`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `1764064800`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `true`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `{}`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `["2026-11-25T10:00:00Z"]`, 0, ReasonBadTime},
		{sketchd.TimeRFC3339, `null`, 0, ReasonMissingTime},
		{sketchd.TimeRFC3339, ``, 0, ReasonMissingTime},

		{sketchd.TimeUnixS, `1764064800`, 1764064800e9, ""},
		{sketchd.TimeUnixS, `1764064800.123`, 1764064800123e6, ""},
		{sketchd.TimeUnixS, `1.7640648001e9`, 1764064800100e6, ""},
		{sketchd.TimeUnixS, `17640648001E-1`, 1764064800100e6, ""},
		{sketchd.TimeUnixS, `"1764064800"`, 1764064800e9, ""},
		{sketchd.TimeUnixS, `"1764064800.5"`, 17640648005e8, ""},
		{sketchd.TimeUnixS, `-1.5`, -15e8, ""},
		{sketchd.TimeUnixS, `-0`, 0, ""},
		{sketchd.TimeUnixS, `0.0000000001`, 0, ""},
		{sketchd.TimeUnixS, `-0.0000000019`, -1, ""},
		{sketchd.TimeUnixS, `1e-999999999`, 0, ""},
		{sketchd.TimeUnixS, `0e999999999`, 0, ""},
		{sketchd.TimeUnixS, `9223372036.854775807`, math.MaxInt64, ""},
		{sketchd.TimeUnixS, `-9223372036.854775808`, math.MinInt64, ""},
		{sketchd.TimeUnixS, `9223372036.854775808`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `-9223372036.854775809`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `1e300`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `1e999999999`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"NaN"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"Inf"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"-Infinity"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `""`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `" 1"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"+1"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"0x10"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"01"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"1."`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `"2026-11-25T10:00:00Z"`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `false`, 0, ReasonBadTime},
		{sketchd.TimeUnixS, `null`, 0, ReasonMissingTime},

		{sketchd.TimeUnixMS, `1764064800123`, 1764064800123e6, ""},
		{sketchd.TimeUnixMS, `1764064800123.456789`, 1764064800123456789, ""},
		{sketchd.TimeUnixMS, `-1`, -1e6, ""},
		{sketchd.TimeUnixMS, `1.5e3`, 15e8, ""},
		{sketchd.TimeUnixUS, `1764064800123456`, 1764064800123456e3, ""},
		{sketchd.TimeUnixUS, `"-1.001"`, -1001, ""},
		{sketchd.TimeUnixNS, `1764064800123456789`, 1764064800123456789, ""},
		{sketchd.TimeUnixNS, `9223372036854775807`, math.MaxInt64, ""},
		{sketchd.TimeUnixNS, `-9223372036854775808`, math.MinInt64, ""},
		{sketchd.TimeUnixNS, `9223372036854775808`, 0, ReasonBadTime},
		{sketchd.TimeUnixNS, `-9223372036854775809`, 0, ReasonBadTime},
		{sketchd.TimeUnixNS, `12.9`, 12, ""},
		{sketchd.TimeUnixNS, `1e-5`, 0, ""},
		{sketchd.TimeUnixNS, `1.2e1`, 12, ""},
		{sketchd.TimeUnixNS, `000`, 0, ReasonBadJSON},
	}
	for _, tt := range tests {
		t.Run(string(tt.format)+"/"+tt.lit, func(t *testing.T) {
			d := mustDecoder(t, timeSpec("at", tt.format), DecodeOptions{})
			msg := `{"x":1}`
			if tt.lit != "" {
				msg = `{"x":1,"at":` + tt.lit + `}`
			}
			got := one(t, d, msg)
			if tt.reason != "" {
				if got.OK || got.Reason != tt.reason {
					t.Fatalf("got %v, want %s", got, tt.reason)
				}
				return
			}
			if !got.OK || got.Time != tt.want {
				t.Fatalf("got %v, want time %d", got, tt.want)
			}
		})
	}
}

func TestDecodeProcessingTime(t *testing.T) {
	s := testSpec()
	s.Time = sketchd.TimeSpec{}
	d := mustDecoder(t, s, DecodeOptions{})
	// ts is an ordinary field here, even when it is garbage.
	out := decodeAll(t, d, `{"country":"DE","device":"d","ts":"garbage"}`+"\n"+`{"country":"FR","device":"d"}`, 7, 12345)
	if len(out) != 2 {
		t.Fatalf("got %v", out)
	}
	for i, r := range out {
		if !r.OK || r.Time != 12345 || r.Pos != sketchd.Position(7, i) {
			t.Errorf("event %d: got %v, want time 12345 pos %d", i, r, sketchd.Position(7, i))
		}
	}
}

func TestDecodeDimensions(t *testing.T) {
	s := testSpec()
	s.GroupBy = []string{"country", "geo.city", "n"}
	d := mustDecoder(t, s, DecodeOptions{})
	const ts = `"ts":"2026-11-25T10:00:00Z"`
	tests := []struct {
		name   string
		fields string
		want   []string
		reason Reason
	}{
		{"strings", `"country":"DE","geo":{"city":"Köln"},"n":"x"`, []string{"DE", "Köln", "x"}, ""},
		{"number literal as written", `"country":"DE","geo":{"city":1.50},"n":-0e1`, []string{"DE", "1.50", "-0e1"}, ""},
		{"bools", `"country":true,"geo":{"city":false},"n":""`, []string{"true", "false", ""}, ""},
		{"escapes", `"country":"D\u0045","geo":{"city":"K\u00f6ln \ud83d\ude00 \"q\" \\ \/ \t"},"n":"\ud800x"`, []string{"DE", "Köln 😀 \"q\" \\ / \t", "\uFFFDx"}, ""},
		{"escaped key names", `"c\u006funtry":"DE","g\u0065o":{"\u0063ity":"X"},"n":"y"`, []string{"DE", "X", "y"}, ""},
		{"invalid utf8 kept", "\"country\":\"\xff\xfe\",\"geo\":{\"city\":\"a\"},\"n\":1", []string{"\xff\xfe", "a", "1"}, ""},
		{"duplicate key: last wins", `"country":"FR","country":"DE","geo":{"city":"a"},"geo":{"city":"b"},"n":1`, []string{"DE", "b", "1"}, ""},
		{"dotted key is not a path", `"country":"DE","geo.city":"a","n":1`, nil, ReasonMissingDimension},
		{"missing", `"geo":{"city":"a"},"n":1`, nil, ReasonMissingDimension},
		{"null", `"country":null,"geo":{"city":"a"},"n":1`, nil, ReasonMissingDimension},
		{"nested missing", `"country":"DE","geo":{},"n":1`, nil, ReasonMissingDimension},
		{"parent not an object", `"country":"DE","geo":"Köln","n":1`, nil, ReasonMissingDimension},
		{"parent array", `"country":"DE","geo":[{"city":"a"}],"n":1`, nil, ReasonMissingDimension},
		{"object", `"country":{"a":1},"geo":{"city":"a"},"n":1`, nil, ReasonBadDimension},
		{"array", `"country":"DE","geo":{"city":[]},"n":1`, nil, ReasonBadDimension},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := one(t, d, `{`+ts+`,`+tt.fields+`}`)
			if tt.reason != "" {
				if got.OK || got.Reason != tt.reason {
					t.Fatalf("got %v, want %s", got, tt.reason)
				}
				return
			}
			if !got.OK || fmt.Sprintf("%q", got.Key) != fmt.Sprintf("%q", tt.want) {
				t.Fatalf("got %v, want key %q", got, tt.want)
			}
		})
	}
}

func TestDecodeKeyIsEncodeKey(t *testing.T) {
	d := mustDecoder(t, testSpec(), DecodeOptions{})
	var keys []string
	for range 3 {
		d.Decode([]byte(benchEvent), 0, 0, func(ev *sketchd.Event) { keys = append(keys, ev.Key) }, nil)
	}
	for _, k := range keys {
		if k != sketchd.EncodeKey("DE", "mobile") {
			t.Errorf("key %q, want %q", k, sketchd.EncodeKey("DE", "mobile"))
		}
	}
}

func aggSpec(aggs map[string]sketchd.Aggregate) sketchd.Stream {
	s := testSpec()
	s.GroupBy = nil
	s.Time = sketchd.TimeSpec{}
	s.Aggregates = aggs
	return s
}

func TestDecodeAggregates(t *testing.T) {
	// AggregateNames order: a (hll x), b (cms m.x), c (tdigest v),
	// d (reservoir y weighted by w), e (reservoir m).
	s := aggSpec(map[string]sketchd.Aggregate{
		"a": {Sketch: sketchd.KindHLL, Field: "x"},
		"b": {Sketch: sketchd.KindCMS, Field: "m.x"},
		"c": {Sketch: sketchd.KindTDigest, Field: "v"},
		"d": {Sketch: sketchd.KindReservoir, Field: "y", Weight: "w"},
		"e": {Sketch: sketchd.KindReservoir, Field: "m"},
	})
	d := mustDecoder(t, s, DecodeOptions{})
	tests := []struct {
		name   string
		msg    string
		want   string // res.Vals formatted
		reason Reason
	}{
		{"all present", `{"x":"u1","m":{"x":7},"v":1.5,"y":"s","w":2}`, `["u1"/0 "7"/0 1.5 "\"s\""/2 "{\"x\":7}"/0]`, ""},
		{"all missing", `{}`, `[- - - - -]`, ""},
		{"all null", `{"x":null,"m":null,"v":null,"y":null}`, `[- - - - -]`, ""},
		{"scalars as canonical text", `{"x":true,"m":{"x":"a\nb"},"v":-0,"y":[1, 2],"w":1e-3}`, `["true"/0 "a\nb"/0 -0 "[1, 2]"/0.001 "{\"x\":\"a\\nb\"}"/0]`, ""},
		{"number literal kept", `{"x":1.50e1,"m":{"x":false}}`, `["1.50e1"/0 "false"/0 - - "{\"x\":false}"/0]`, ""},
		{"escaped item unescaped", `{"x":"\u00e9\ud83d\ude00","m":{"x":"\"\\"}}`, `["é😀"/0 "\"\\"/0 - - "{\"x\":\"\\\"\\\\\"}"/0]`, ""},
		{"reservoir raw keeps escapes", `{"y":"\u00e9","w":1}`, `[- - - "\"\\u00e9\""/1 -]`, ""},
		{"tdigest underflow is zero", `{"v":1e-400}`, `[- - 0 - -]`, ""},
		{"hll object", `{"x":{}}`, "", ReasonWrongType},
		{"cms array", `{"m":{"x":[1]}}`, "", ReasonWrongType},
		{"tdigest numeric string", `{"v":"1.5"}`, "", ReasonWrongType},
		{"tdigest bool", `{"v":true}`, "", ReasonWrongType},
		{"tdigest NaN string", `{"v":"NaN"}`, "", ReasonWrongType},
		{"tdigest overflow", `{"v":1e400}`, "", ReasonNonFinite},
		{"tdigest -overflow", `{"v":-1.8e308}`, "", ReasonNonFinite},
		{"weight missing", `{"y":1}`, "", ReasonWrongType},
		{"weight null", `{"y":1,"w":null}`, "", ReasonWrongType},
		{"weight string", `{"y":1,"w":"2"}`, "", ReasonWrongType},
		{"weight zero", `{"y":1,"w":0}`, "", ReasonWrongType},
		{"weight negative", `{"y":1,"w":-1}`, "", ReasonWrongType},
		{"weight overflow", `{"y":1,"w":1e999}`, "", ReasonNonFinite},
		{"weight unchecked without item", `{"w":"junk"}`, `[- - - - -]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := one(t, d, tt.msg)
			if tt.reason != "" {
				if got.OK || got.Reason != tt.reason {
					t.Fatalf("got %v, want %s", got, tt.reason)
				}
				return
			}
			if !got.OK || fmt.Sprint(got.Vals) != tt.want {
				t.Fatalf("got %v, want vals %s", got, tt.want)
			}
		})
	}
}

func TestDecodeSharedAndPrefixPaths(t *testing.T) {
	// The same path feeds a dimension and two aggregates; a path and its
	// prefix are both needed.
	s := aggSpec(map[string]sketchd.Aggregate{
		"a": {Sketch: sketchd.KindHLL, Field: "u.id"},
		"b": {Sketch: sketchd.KindCMS, Field: "u.id"},
		"c": {Sketch: sketchd.KindReservoir, Field: "u"},
	})
	s.GroupBy = []string{"u.id"}
	d := mustDecoder(t, s, DecodeOptions{})
	got := one(t, d, `{"u":{"id":"\u0041\u0042","x":[{"id":1}]}}`)
	if !got.OK || fmt.Sprint(got.Key) != "[AB]" || fmt.Sprint(got.Vals) != `["AB"/0 "AB"/0 "{\"id\":\"\\u0041\\u0042\",\"x\":[{\"id\":1}]}"/0]` {
		t.Fatalf("got %v", got)
	}
}

func TestDecodeManyChildren(t *testing.T) {
	// More than indexAbove siblings switches the trie node to a map.
	s := aggSpec(map[string]sketchd.Aggregate{})
	var obj []string
	for i := range 12 {
		f := fmt.Sprintf("f%d", i)
		s.Aggregates[fmt.Sprintf("a%02d", i)] = sketchd.Aggregate{Sketch: sketchd.KindHLL, Field: f}
		obj = append(obj, fmt.Sprintf(`"%s":%d`, f, i))
	}
	d := mustDecoder(t, s, DecodeOptions{})
	got := one(t, d, "{"+strings.Join(obj, ",")+"}")
	if !got.OK || fmt.Sprint(got.Vals) != `["0"/0 "1"/0 "2"/0 "3"/0 "4"/0 "5"/0 "6"/0 "7"/0 "8"/0 "9"/0 "10"/0 "11"/0]` {
		t.Fatalf("got %v", got)
	}
}

func TestDecodeReasons(t *testing.T) {
	d := mustDecoder(t, testSpec(), DecodeOptions{})
	small := mustDecoder(t, testSpec(), DecodeOptions{MaxEventBytes: 200, MaxMessageBytes: 1000})
	ev := func(repl ...string) string { return strings.NewReplacer(repl...).Replace(benchEvent) }
	tests := []struct {
		name   string
		msg    string
		reason Reason
	}{
		{"truncated", benchEvent[:50], ReasonBadJSON},
		{"trailing garbage", benchEvent + "x", ReasonBadJSON},
		{"two values on a line", `{"a":1} {"b":2}`, ReasonBadJSON},
		{"trailing comma", `{"a":1,}`, ReasonBadJSON},
		{"single quotes", `{'a':1}`, ReasonBadJSON},
		{"control char in string", "{\"a\":\"x\ty\"}", ReasonBadJSON},
		{"bad escape", `{"a":"\x"}`, ReasonBadJSON},
		{"bad unicode escape", `{"a":"\u12g4"}`, ReasonBadJSON},
		{"leading zero", `{"a":01}`, ReasonBadJSON},
		{"NaN literal", `{"a":NaN}`, ReasonBadJSON},
		{"bare word", `hello`, ReasonBadJSON},
		{"too deep", strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1), ReasonBadJSON},
		{"array", `[1,2]`, ReasonNotObject},
		{"string", `"x"`, ReasonNotObject},
		{"number", `42`, ReasonNotObject},
		{"null", `null`, ReasonNotObject},
		{"missing time", ev(`"ts":"2026-11-25T10:00:00.123Z",`, ""), ReasonMissingTime},
		{"bad time", ev("2026-11-25", "2026-11-31"), ReasonBadTime},
		{"missing dimension", ev(`"device":"mobile",`, ""), ReasonMissingDimension},
		{"bad dimension", ev(`"mobile"`, `["mobile"]`), ReasonBadDimension},
		{"wrong type", ev(`123.4`, `"123.4"`), ReasonWrongType},
		{"non finite", ev(`123.4`, `1e999`), ReasonNonFinite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := one(t, d, tt.msg)
			if got.OK || got.Reason != tt.reason || got.Raw != tt.msg || got.Detail == "" {
				t.Fatalf("got %v, want %s with the whole event as raw", got, tt.reason)
			}
		})
	}
	t.Run("too deep fits", func(t *testing.T) {
		d := mustDecoder(t, testSpec(), DecodeOptions{})
		msg := `{"a":` + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "}"
		if got := one(t, d, msg); got.Reason != ReasonBadJSON || !strings.Contains(got.Detail, "deep") {
			t.Fatalf("got %v, want bad_json (nesting too deep)", got)
		}
	})
	t.Run("oversize event", func(t *testing.T) {
		msg := ev(`{"a":1}`, `"`+strings.Repeat("x", 100)+`"`)
		if got := one(t, small, msg); got.Reason != ReasonOversize || got.Raw != msg {
			t.Fatalf("got %v, want oversize", got)
		}
	})
	t.Run("oversize message", func(t *testing.T) {
		msg := strings.Repeat(`{"ts":"x"}`+"\n", 101)
		out := decodeAll(t, small, msg, 1, 0)
		if len(out) != 1 || out[0].Reason != ReasonOversize || out[0].Raw != msg {
			t.Fatalf("got %d results %v, want one oversize with the whole message", len(out), out)
		}
	})
	t.Run("Reasons lists all", func(t *testing.T) {
		if len(Reasons) != 10 {
			t.Fatalf("len(Reasons) = %d", len(Reasons))
		}
	})
}

func TestDecodeNDJSON(t *testing.T) {
	s := testSpec()
	d := mustDecoder(t, s, DecodeOptions{MaxEventBytes: 300})
	good := func(country string) string { return strings.Replace(benchEvent, `"DE"`, `"`+country+`"`, 1) }
	msg := strings.Join([]string{
		"",
		good("A"),
		"   \t",
		good("B") + "\r",
		`{"ts":"2026-11-25T10:00:00Z","country":"C"`, // truncated: must not swallow the next line
		good("D"),
		`not json`,
		`[1]`,
		"{\"ts\":\"2026-11-25T10:00:00Z\",\"device\":\"x\"}\r",
		"\r",
		`{"big":"` + strings.Repeat("x", 400) + `"}`,
		"  " + good("E") + "  ",
		"",
		"",
	}, "\n")
	out := decodeAll(t, d, msg, 5, 0)
	want := []string{"ok A", "ok B", "bad_json", "ok D", "bad_json", "not_object", "missing_dimension", "oversize", "ok E"}
	if len(out) != len(want) {
		t.Fatalf("got %d results, want %d:\n%v", len(out), len(want), out)
	}
	for i, r := range out {
		got := string(r.Reason)
		if r.OK {
			got = "ok " + r.Key[0]
			if r.Pos != sketchd.Position(5, i) {
				t.Errorf("event %d: pos %d, want %d", i, r.Pos, sketchd.Position(5, i))
			}
			if r.Vals[1].Bytes != good(r.Key[0]) {
				t.Errorf("event %d: whole-event sample %q, want the trimmed line", i, r.Vals[1].Bytes)
			}
		} else if strings.ContainsAny(r.Raw, "\r\n") || strings.TrimSpace(r.Raw) != r.Raw {
			t.Errorf("event %d: raw %q is not a trimmed line", i, r.Raw)
		}
		if got != want[i] {
			t.Errorf("event %d: got %v, want %s", i, r, want[i])
		}
	}
}

func TestDecodePrettyPrinted(t *testing.T) {
	d := mustDecoder(t, testSpec(), DecodeOptions{})
	pretty := "{\n  \"ts\": \"2026-11-25T10:00:00Z\",\n  \"country\": \"DE\",\r\n  \"device\": \"x\",\n  \"extra\": {\n    \"a\": 1\n  }\n}"
	out := decodeAll(t, d, pretty+"\n"+pretty+"\n", 3, 0)
	if len(out) != 2 || !out[0].OK || !out[1].OK || out[1].Pos != sketchd.Position(3, 1) || out[0].Vals[1].Bytes != pretty {
		t.Fatalf("got %v", out)
	}
	// A broken multi-line value is reported line by line.
	out = decodeAll(t, d, "{\n\"a\": 1,\n}\n"+benchEvent, 0, 0)
	want := []Reason{ReasonBadJSON, ReasonBadJSON, ReasonBadJSON, ""}
	if len(out) != len(want) {
		t.Fatalf("got %v", out)
	}
	for i, r := range out {
		if r.Reason != want[i] {
			t.Errorf("event %d: got %v, want %q", i, r, want[i])
		}
	}
}

func TestDecodeTooManyEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes a million events")
	}
	s := aggSpec(map[string]sketchd.Aggregate{"a": {Sketch: sketchd.KindHLL, Field: "a"}})
	n := sketchd.MaxEventsPerMessage + 3
	msg := strings.Repeat("{}\n", n-1) + "x"
	d := mustDecoder(t, s, DecodeOptions{MaxMessageBytes: len(msg)})
	var oks, bads int
	var last []byte
	d.Decode([]byte(msg), 1, 0, func(ev *sketchd.Event) { oks++ }, func(raw []byte, r Reason, _ string) {
		if r != ReasonTooManyEvents {
			t.Fatalf("reason %s", r)
		}
		bads++
		last = raw
	})
	if oks != sketchd.MaxEventsPerMessage || bads != 3 || string(last) != "x" {
		t.Fatalf("ok %d bad %d last %q", oks, bads, last)
	}
}

func TestDecodeAllocs(t *testing.T) {
	d := mustDecoder(t, testSpec(), DecodeOptions{})
	msg := []byte(benchEvent)
	okf := func(*sketchd.Event) {}
	badf := func([]byte, Reason, string) { t.Fatal("bad") }
	if n := testing.AllocsPerRun(100, func() { d.Decode(msg, 1, 0, okf, badf) }); n != 0 {
		t.Errorf("%v allocs per event, want 0 for a repeated key", n)
	}
}

func TestNewDecoderErrors(t *testing.T) {
	for _, s := range []sketchd.Stream{
		{Time: sketchd.TimeSpec{Field: "a..b"}},
		{Time: sketchd.TimeSpec{Field: "t", Format: "iso"}},
		{GroupBy: []string{"."}},
		{Aggregates: map[string]sketchd.Aggregate{"a": {Sketch: "bloom", Field: "x"}}},
		{Aggregates: map[string]sketchd.Aggregate{"a": {Sketch: sketchd.KindHLL}}},
		{Aggregates: map[string]sketchd.Aggregate{"a": {Sketch: sketchd.KindHLL, Field: "x", Weight: "w"}}},
	} {
		if _, err := NewDecoder(s, DecodeOptions{}); err == nil {
			t.Errorf("NewDecoder(%+v): no error", s)
		}
	}
}
