package sketchd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// ("90s", "1m", "168h"). It also accepts a whole number of days ("7d").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d compactly: 1m rather than 1m0s, 168h rather than 168h0m0s.
func (d Duration) String() string {
	td := time.Duration(d)
	if td == 0 {
		return "0s"
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// day is the length of "1d".
const day = 24 * time.Hour

// maxDays is the largest whole number of days a Duration holds (106751d,
// about 292 years): more overflows time.Duration.
const maxDays = math.MaxInt64 / int64(day)

// ParseDuration parses a Go duration string or a whole number of days ("7d").
// A duration that does not fit in a time.Duration (more than about 292
// years: "200000d", "9999999999h") is an error, never a wrapped-around value.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) || n < 0 {
			return 0, fmt.Errorf("invalid duration %q: want a Go duration (90s, 1m, 2h) or whole days (7d)", s)
		}
		if err != nil || n > maxDays {
			return 0, fmt.Errorf("invalid duration %q: out of range (at most %dd)", s, maxDays)
		}
		return Duration(time.Duration(n) * day), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil { // time.ParseDuration also fails on overflow
		return 0, fmt.Errorf("invalid duration %q: want a Go duration (90s, 1m, 2h) or whole days (7d), at most about 292 years", s)
	}
	return Duration(v), nil
}
