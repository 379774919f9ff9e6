package api

import (
	"strconv"
	"strings"
	"time"
)

// Times relative to now, as dashboards send them (Grafana's syntax):
//
//	now            the request's now
//	now-1h         now minus (or plus) amounts: s m h d w (fixed), M y (calendar)
//	now-1d/d       then rounded down to a unit (s m h d w M y), in UTC; a
//	               week starts on Monday
//
// In to, a rounding goes up to the end of the unit instead (to=now/d is the
// end of today), as Grafana reads its range's end: "Today" is
// from=now/d&to=now/d.

// relUnits are the units of amounts and roundings.
const relUnits = "smhdwMy"

// parseRelative parses s, which starts with "now", against now. roundUp
// is set for to.
func parseRelative(s string, now time.Time, roundUp bool) (time.Time, error) {
	bad := timeError("want now, now-1h, now-1d/d and the like (units s m h d w M y), got " + strconv.Quote(s))
	rest, ok := strings.CutPrefix(s, "now")
	if !ok {
		return time.Time{}, bad
	}
	t := now.UTC()
	for rest != "" && (rest[0] == '-' || rest[0] == '+') {
		sign := 1
		if rest[0] == '-' {
			sign = -1
		}
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n > 6 || n == len(rest) {
			return time.Time{}, bad
		}
		amount, _ := strconv.Atoi(rest[:n])
		var err error
		if t, err = addUnit(t, sign*amount, rest[n]); err != nil {
			return time.Time{}, bad
		}
		rest = rest[n+1:]
	}
	if rest != "" {
		if len(rest) != 2 || rest[0] != '/' || !strings.Contains(relUnits, rest[1:]) {
			return time.Time{}, bad
		}
		t = roundDown(t, rest[1])
		if roundUp {
			t, _ = addUnit(t, 1, rest[1])
		}
	}
	return t, nil
}

// addUnit adds n units to t.
func addUnit(t time.Time, n int, unit byte) (time.Time, error) {
	switch unit {
	case 's':
		return t.Add(time.Duration(n) * time.Second), nil
	case 'm':
		return t.Add(time.Duration(n) * time.Minute), nil
	case 'h':
		return t.Add(time.Duration(n) * time.Hour), nil
	case 'd':
		return t.AddDate(0, 0, n), nil
	case 'w':
		return t.AddDate(0, 0, 7*n), nil
	case 'M':
		return t.AddDate(0, n, 0), nil
	case 'y':
		return t.AddDate(n, 0, 0), nil
	}
	return t, timeError("unknown unit")
}

// roundDown rounds t (UTC) down to the start of its unit.
func roundDown(t time.Time, unit byte) time.Time {
	y, mo, d := t.Date()
	switch unit {
	case 's':
		return t.Truncate(time.Second)
	case 'm':
		return t.Truncate(time.Minute)
	case 'h':
		return t.Truncate(time.Hour)
	case 'd':
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case 'w':
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, mo, d-back, 0, 0, 0, 0, time.UTC)
	case 'M':
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) // 'y'
}
