package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/sketchd/sketchd"
)

// fuzzSpec exercises every path kind: a nested dimension, a dimension
// shared with an aggregate, every sketch kind, a weighted reservoir and a
// whole-event reservoir (which gives the fuzz target each good event's span).
func fuzzSpec(format sketchd.TimeFormat) sketchd.Stream {
	s := testSpec()
	s.Time = sketchd.TimeSpec{Field: "ts", Format: format}
	s.GroupBy = []string{"country", "geo.city"}
	s.Aggregates = map[string]sketchd.Aggregate{
		"a_users":   {Sketch: sketchd.KindHLL, Field: "user_id"},
		"b_urls":    {Sketch: sketchd.KindCMS, Field: "geo.city"},
		"c_latency": {Sketch: sketchd.KindTDigest, Field: "latency_ms"},
		"d_sample":  {Sketch: sketchd.KindReservoir, Field: "geo", Weight: "w"},
		"e_all":     {Sketch: sketchd.KindReservoir},
	}
	return s
}

// offset returns where sub starts in msg (sub aliases msg).
func offset(msg, sub []byte) int {
	if len(sub) == 0 {
		return -1
	}
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(sub))) - uintptr(unsafe.Pointer(unsafe.SliceData(msg))))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		benchEvent,
		`{"ts":"2026-11-25T10:00:00Z","country":"DE","geo":{"city":"K\u00f6ln"},"user_id":7,"latency_ms":1.5,"w":2}`,
		`{"ts":"1969-12-31T23:59:59.999999999-01:00","country":true,"geo":{"city":1e3},"w":1e-300}` + "\r\n\r\n" + `{"ts":"2026-11-25T10:00:00Z"}`,
		"{\n \"ts\": \"2026-11-25T10:00:00Z\",\n \"country\": \"\\ud83d\\ude00\", \"geo\": {\"city\": \"\\ud800\"}\n}\n[1]\nnull",
		`{"ts":1764064800.5,"country":"x","geo":{"city":"y"},"latency_ms":1e400}`,
		"{\"a\":\"\xff\"}\n{\"a\":[[[[{}]]]]}\n{\"a\":1} x\n{\"a\":",
		`{"country":{"a":1},"geo":[]}`,
		"",
		"\n \t\r\n",
	} {
		f.Add([]byte(s), uint64(1), uint8(0))
	}
	formats := []sketchd.TimeFormat{sketchd.TimeRFC3339, sketchd.TimeUnixS, sketchd.TimeUnixMS, sketchd.TimeUnixNS, ""}
	decoders := make([]*Decoder, len(formats))
	for i, fm := range formats {
		s := fuzzSpec(fm)
		if fm == "" {
			s.Time = sketchd.TimeSpec{}
		}
		decoders[i] = mustDecoder(f, s, Options{MaxEventBytes: 512, MaxMessageBytes: 8 << 10})
	}
	f.Fuzz(func(t *testing.T, msg []byte, seq uint64, which uint8) {
		d := decoders[int(which)%len(decoders)]
		seq %= 1 << 40
		msg = msg[:len(msg):len(msg)]
		orig := bytes.Clone(msg)
		next := 0 // the first byte not yet reported
		index := 0
		claim := func(raw []byte, what string) {
			t.Helper()
			if len(raw) == 0 {
				t.Fatalf("event %d (%s): empty span", index, what)
			}
			o := offset(msg, raw)
			if o < next || o+len(raw) > len(msg) {
				t.Fatalf("event %d (%s): span [%d,%d) overlaps or leaves msg (next %d)", index, what, o, o+len(raw), next)
			}
			if bytes.TrimLeft(msg[next:o], " \t\r\n") != nil && len(bytes.TrimLeft(msg[next:o], " \t\r\n")) > 0 {
				t.Fatalf("event %d (%s): non-blank bytes %q before it were not reported", index, what, msg[next:o])
			}
			next = o + len(raw)
			index++
		}
		d.Decode(msg, seq, 42, func(ev *sketchd.Event) {
			raw := ev.Raw
			if all := ev.Values[4]; !all.Present || offset(msg, all.Bytes) != offset(msg, raw) || len(all.Bytes) != len(raw) {
				t.Fatalf("whole-event sample %q is not Raw %q", all.Bytes, raw)
			}
			claim(raw, "ok")
			if !json.Valid(raw) || raw[0] != '{' {
				t.Fatalf("ok event %q is not a JSON object", raw)
			}
			if want := uint64(0); seq > 0 && ev.Pos != sketchd.Position(seq, index-1) || seq == 0 && ev.Pos != want {
				t.Fatalf("pos %d, want index %d", ev.Pos, index-1)
			}
			key, err := sketchd.DecodeKey(ev.Key)
			if err != nil || len(key) != 2 {
				t.Fatalf("key %q: %v", ev.Key, err)
			}
			for i, v := range ev.Values {
				switch {
				case !v.Present && (v.Bytes != nil || v.Num != 0):
					t.Fatalf("value %d not present but set: %+v", i, v)
				case i == 2 && v.Present && (math.IsInf(v.Num, 0) || math.IsNaN(v.Num)):
					t.Fatalf("tdigest value %v", v.Num)
				case i == 3 && v.Present && !(v.Num > 0 && !math.IsInf(v.Num, 0)):
					t.Fatalf("weight %v", v.Num)
				case i == 3 && v.Present && !json.Valid(v.Bytes):
					t.Fatalf("reservoir item %q is not JSON", v.Bytes)
				}
			}
			// Oracle: encoding/json (which also keeps the last of duplicate
			// keys) agrees on the dimensions when the strings are valid UTF-8.
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("encoding/json rejects an ok event %q: %v", raw, err)
			}
			geo, _ := m["geo"].(map[string]any)
			for i, v := range []any{m["country"], geo["city"]} {
				var want string
				switch v := v.(type) {
				case string:
					want = v
				case json.Number:
					want = string(v)
				case bool:
					want = fmt.Sprint(v)
				default:
					t.Fatalf("dimension %d is %T in %q but the event is ok", i, v, raw)
				}
				if utf8.ValidString(key[i]) && !strings.ContainsRune(want, utf8.RuneError) && key[i] != want {
					t.Fatalf("dimension %d = %q, encoding/json says %q", i, key[i], want)
				}
			}
			if d.timeSlot < 0 && ev.Time != 42 {
				t.Fatalf("processing time %d, want 42", ev.Time)
			}
		}, func(raw []byte, reason Reason, detail string) {
			if reason == ReasonOversize && len(raw) == len(msg) && len(msg) > d.maxMsg {
				next = len(msg)
				index++
				return
			}
			claim(raw, string(reason))
			if detail == "" {
				t.Fatalf("no detail for %s", reason)
			}
			if bytes.ContainsAny(raw[:1], " \t\r\n") || bytes.ContainsAny(raw[len(raw)-1:], " \t\r\n") {
				t.Fatalf("raw %q is not trimmed", raw)
			}
			switch reason {
			case ReasonBadJSON:
				if json.Valid(raw) && !strings.Contains(detail, "deep") {
					t.Fatalf("bad_json for valid JSON %q (%s)", raw, detail)
				}
			case ReasonOversize, ReasonTooManyEvents:
			default:
				if !json.Valid(raw) {
					t.Fatalf("%s for invalid JSON %q", reason, raw)
				}
			}
		})
		if rest := bytes.TrimLeft(msg[next:], " \t\r\n"); len(rest) > 0 {
			t.Fatalf("trailing bytes %q were not reported", rest)
		}
		if !bytes.Equal(msg, orig) {
			t.Fatalf("Decode modified msg")
		}
	})
}

var strictRFC3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$`)

// FuzzParseRFC3339 checks the hand-written RFC 3339 parser against
// time.Parse.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2026-11-25T10:00:00.123Z", "1969-12-31T23:59:59+01:00", "2262-04-11T23:47:16.854775807Z", "0000-01-01T00:00:00Z", "2024-02-29T23:59:59.9999999999-23:59"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseRFC3339([]byte(s))
		// time.Parse accepts a comma before the fraction; RFC 3339 does not.
		if strings.Contains(s, ",") {
			return
		}
		norm := []byte(s)
		if len(norm) > 10 && (norm[10] == 't' || norm[10] == ' ') {
			norm[10] = 'T'
		}
		if len(norm) > 0 && norm[len(norm)-1] == 'z' {
			norm[len(norm)-1] = 'Z'
		}
		tm, terr := time.Parse(time.RFC3339Nano, string(norm))
		// time.Parse also takes one-digit hours and the like: only strict
		// RFC 3339 shapes must parse.
		inRange := terr == nil && tm.Year() > 1677 && tm.Year() < 2262 && strictRFC3339.MatchString(s)
		switch {
		case err == "" && terr != nil:
			t.Fatalf("parseRFC3339(%q) = %d, time.Parse: %v", s, got, terr)
		case err != "" && inRange:
			t.Fatalf("parseRFC3339(%q): %s, time.Parse = %v", s, err, tm)
		case err == "" && got != tm.UnixNano():
			t.Fatalf("parseRFC3339(%q) = %d, time.Parse = %d", s, got, tm.UnixNano())
		}
	})
}

// FuzzParseUnix checks the exact decimal conversion against math/big.
func FuzzParseUnix(f *testing.F) {
	for _, s := range []string{"1764064800.123", "-1.5e3", "9223372036.854775807", "-9223372036854775808", "1e-999", "0.000", "12E+2"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, u uint8) {
		unit := []int{0, 3, 6, 9}[u%4]
		got, err := parseUnix([]byte(s), unit)
		if !json.Valid([]byte(s)) || s == "" || !strings.ContainsAny(s[:1], "-0123456789") || strings.ContainsAny(s, " \t\r\n") {
			if err == "" {
				t.Fatalf("parseUnix(%q) = %d for a non-number", s, got)
			}
			return
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 && len(s)-i > 5 {
			return // huge exponents make math/big slow
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("big.Rat rejects %q", s)
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(unit)), nil)))
		q := new(big.Int).Quo(r.Num(), r.Denom()) // truncates toward zero
		switch {
		case !q.IsInt64() && err == "":
			t.Fatalf("parseUnix(%q, %d) = %d, want out of range (%v)", s, unit, got, q)
		case q.IsInt64() && err != "":
			t.Fatalf("parseUnix(%q, %d): %s, want %v", s, unit, err, q)
		case q.IsInt64() && got != q.Int64():
			t.Fatalf("parseUnix(%q, %d) = %d, want %v", s, unit, got, q)
		}
	})
}

// jsonNumber matches a JSON number literal, as the scanner validates them.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// FuzzParseDecimal checks that parseFloat, with its fast path, gives
// strconv.ParseFloat's result bit for bit on every JSON number literal.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0", "-0.0", "54.59815003314423", "123.4", "9007199254740991", "9007199254740993",
		"900719925474099.3", "0.0000000000000000000001", "0.00000000000000000000001", "1e3", "-7.25", "18446744073709551616", "1.7976931348623157e309"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !jsonNumber.MatchString(s) {
			return
		}
		got, ok := parseFloat([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		wantOK := err == nil && !math.IsInf(want, 0)
		if ok != wantOK || ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: got %v (%v), want %v (%v)", s, got, ok, want, wantOK)
		}
	})
}
