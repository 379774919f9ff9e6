package decode

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
)

// testSpec is the benchmark stream: time ts (rfc3339), group_by [country,
// device], aggregates latency (tdigest latency_ms), sample (reservoir, whole
// event), urls (cms url), users (hll user_id) — in AggregateNames order:
// the load runner's page-view stream (panetest.LoadShape).
func testSpec() sketchd.Stream { return panetest.LoadShape("pageviews", false) }

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

func mustDecoder(t testing.TB, s sketchd.Stream, o Options) *Decoder {
	t.Helper()
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatalf("spec: %v", err)
	}
	d, err := New(s, o)
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
	d := mustDecoder(t, testSpec(), Options{})
	got := one(t, d, benchEvent)
	want := res{OK: true, Key: []string{"DE", "mobile"},
		Time: time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC).UnixNano(),
		Vals: []val{{true, "", 123.4}, {true, benchEvent, 0}, {true, "/products/42", 0}, {true, "u-123456", 0}}}
	if got.String() != want.String() {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestDecodeDimensions(t *testing.T) {
	s := testSpec()
	s.GroupBy = []string{"country", "geo.city", "n"}
	d := mustDecoder(t, s, Options{})
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
		{"invalid utf8 refused", "\"country\":\"\xff\xfe\",\"geo\":{\"city\":\"a\"},\"n\":1", nil, ReasonBadDimension},
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
	d := mustDecoder(t, testSpec(), Options{})
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
	d := mustDecoder(t, s, Options{})
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
	d := mustDecoder(t, s, Options{})
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
	d := mustDecoder(t, s, Options{})
	got := one(t, d, "{"+strings.Join(obj, ",")+"}")
	if !got.OK || fmt.Sprint(got.Vals) != `["0"/0 "1"/0 "2"/0 "3"/0 "4"/0 "5"/0 "6"/0 "7"/0 "8"/0 "9"/0 "10"/0 "11"/0]` {
		t.Fatalf("got %v", got)
	}
}

func TestDecodeReasons(t *testing.T) {
	d := mustDecoder(t, testSpec(), Options{})
	small := mustDecoder(t, testSpec(), Options{MaxEventBytes: 200, MaxMessageBytes: 1000})
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
		{"beyond MaxInput", ev(`123.4`, `1.7e308`), ReasonOutOfRange},
		{"beyond -MaxInput", ev(`123.4`, `-4.5e307`), ReasonOutOfRange},
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
		d := mustDecoder(t, testSpec(), Options{})
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
		if len(Reasons) != 11 {
			t.Fatalf("len(Reasons) = %d", len(Reasons))
		}
	})
}

func TestDecodeNDJSON(t *testing.T) {
	s := testSpec()
	d := mustDecoder(t, s, Options{MaxEventBytes: 300})
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
	d := mustDecoder(t, testSpec(), Options{})
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
	d := mustDecoder(t, s, Options{MaxMessageBytes: len(msg)})
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
	d := mustDecoder(t, testSpec(), Options{})
	msg := []byte(benchEvent)
	okf := func(*sketchd.Event) {}
	badf := func([]byte, Reason, string) { t.Fatal("bad") }
	if n := testing.AllocsPerRun(100, func() { d.Decode(msg, 1, 0, okf, badf) }); n != 0 {
		t.Errorf("%v allocs per event, want 0 for a repeated key", n)
	}
}

func TestNewErrors(t *testing.T) {
	for _, s := range []sketchd.Stream{
		{Time: sketchd.TimeSpec{Field: "a..b"}},
		{Time: sketchd.TimeSpec{Field: "t", Format: "iso"}},
		{GroupBy: []string{"."}},
		{Aggregates: map[string]sketchd.Aggregate{"a": {Sketch: "bloom", Field: "x"}}},
		{Aggregates: map[string]sketchd.Aggregate{"a": {Sketch: sketchd.KindHLL}}},
		{Aggregates: map[string]sketchd.Aggregate{"a": {Sketch: sketchd.KindHLL, Field: "x", Weight: "w"}}},
	} {
		if _, err := New(s, Options{}); err == nil {
			t.Errorf("New(%+v): no error", s)
		}
	}
}
