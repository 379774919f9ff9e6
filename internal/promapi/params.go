package promapi

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// Times must fit in int64 nanoseconds with room for pane arithmetic.
var (
	minTime = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
)

// param returns the form value of name (query string or POST body); a
// repeated parameter is refused.
func param(r *http.Request, name string) (string, bool, error) {
	vals, ok := r.Form[name]
	if !ok {
		return "", false, nil
	}
	if len(vals) != 1 {
		return "", false, badData("parameter %q given %d times; give it once", name, len(vals))
	}
	return vals[0], true, nil
}

// timeParam parses a Prometheus time: unix seconds (with a fraction) or
// RFC 3339; def when absent. The answer is unix ns.
func timeParam(r *http.Request, name string, def time.Time) (int64, error) {
	s, ok, err := param(r, name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return def.UnixNano(), nil
	}
	var t time.Time
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, badData("invalid parameter %q: %q is not a time", name, s)
		}
		sec, frac := math.Modf(f)
		if sec < float64(minTime.Unix()) || sec > float64(maxTime.Unix()) {
			return 0, badData("invalid parameter %q: %s is out of range (years 1700 to 2249)", name, s)
		}
		t = time.Unix(int64(sec), int64(math.Round(frac*1000))*int64(time.Millisecond))
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return 0, badData("invalid parameter %q: cannot parse %q to a valid timestamp (unix seconds or RFC 3339)", name, s)
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return 0, badData("invalid parameter %q: %s is out of range (years 1700 to 2249)", name, s)
	}
	return t.UnixNano(), nil
}

// durationParam parses a Prometheus duration: seconds (with a fraction)
// or a duration such as 1m, 1h30m; def when absent. It must be positive.
func durationParam(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	s, ok, err := param(r, name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return def, nil
	}
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := math.Round(f * float64(time.Second))
		if math.IsNaN(ns) || ns > math.MaxInt64 || ns < math.MinInt64 {
			return 0, badData("invalid parameter %q: cannot parse %q to a valid duration", name, s)
		}
		d = time.Duration(ns)
	} else {
		md, err := model.ParseDuration(s)
		if err != nil {
			return 0, badData("invalid parameter %q: cannot parse %q to a valid duration", name, s)
		}
		d = time.Duration(md)
	}
	if d <= 0 {
		return 0, badData("invalid parameter %q: zero or negative duration is not accepted; try a positive integer", name)
	}
	return d, nil
}

// ceilTo rounds d up to a multiple of g (g > 0).
func ceilTo(d, g int64) int64 {
	if r := d % g; r != 0 {
		return d + g - r
	}
	return d
}

// unixMs is t (unix ns) in milliseconds, as Prometheus's timestamps are.
func unixMs(ns int64) int64 { return ns / int64(time.Millisecond) }
