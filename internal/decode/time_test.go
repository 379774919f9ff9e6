package decode

import (
	"math"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

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
			d := mustDecoder(t, timeSpec("at", tt.format), Options{})
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
	d := mustDecoder(t, s, Options{})
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
