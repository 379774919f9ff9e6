package sketchd

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // substring of the error; "" = no error
	}{
		{"90s", 90 * time.Second, ""},
		{"1m", time.Minute, ""},
		{" 2h ", 2 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"0d", 0, ""},
		{"-5m", -5 * time.Minute, ""}, // callers decide whether negative is allowed
		{"106751d", 106751 * 24 * time.Hour, ""},
		{"2562047h", 2562047 * time.Hour, ""},
		// Overflow is an error, never a wrapped-around value.
		{"106752d", 0, "out of range"},
		{"200000d", 0, "out of range"},
		{"1048577d", 0, "out of range"},
		{"9223372036854775807d", 0, "out of range"},
		{"99999999999999999999d", 0, "out of range"},
		{"9999999999h", 0, "invalid duration"},
		{"2562048h", 0, "invalid duration"},
		{"1e30s", 0, "invalid duration"},
		// Malformed.
		{"-1d", 0, "invalid duration"},
		{"-99999999999999999999d", 0, "invalid duration"},
		{"1.5d", 0, "invalid duration"},
		{"d", 0, "invalid duration"},
		{"", 0, "invalid duration"},
		{"soon", 0, "invalid duration"},
		{"5", 0, "invalid duration"},
		{"NaNs", 0, "invalid duration"},
		{"\xff\xfed", 0, "invalid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Std() != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		text string
	}{
		{0, "0s"},
		{90 * time.Second, "1m30s"},
		{time.Minute, "1m"},
		{168 * time.Hour, "168h"},
		{-5 * time.Minute, "-5m"},
		{1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		b, err := Duration(tt.d).MarshalText()
		if err != nil || string(b) != tt.text {
			t.Errorf("MarshalText(%v) = %q, %v; want %q", tt.d, b, err, tt.text)
		}
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back.Std() != tt.d {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", b, back, err, tt.d)
		}
	}
	var d Duration = 42
	if err := d.UnmarshalText([]byte("200000d")); err == nil || d != 42 {
		t.Errorf("UnmarshalText(200000d) = %v, %v; want an error and no change", d, err)
	}
}

// FuzzParseDuration: ParseDuration never panics, a whole-day input never
// comes back negative or wrapped, and whatever parses formats back to
// itself.
//
//	go test -run '^$' -fuzz FuzzParseDuration -fuzztime 30s .
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "7d", "200000d", "106751d", "106752d", "-5m", "9999999999h", "1.5h", "0", "+3d", "-0d", "1e30s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if strings.HasSuffix(strings.TrimSpace(s), "d") && (d < 0 || d.Std()%(24*time.Hour) != 0) {
			t.Fatalf("ParseDuration(%q) = %d: a day count must give a non-negative whole number of days", s, d)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, formats as %q, which parses to %v, %v", s, d, d.String(), back, err)
		}
	})
}
