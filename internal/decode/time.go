package decode

import "math"

// time converts the time field at sp to unix nanoseconds, or returns why it
// cannot.
func (d *Decoder) time(raw []byte, sp span) (int64, string) {
	var b []byte
	switch sp.kind {
	case kString:
		b = raw[sp.start:sp.end]
		if sp.esc {
			d.tbuf = appendUnescaped(d.tbuf[:0], b)
			b = d.tbuf
		}
	case kNumber:
		if d.timeUnit < 0 {
			return 0, "got a number, want an RFC 3339 string"
		}
		b = raw[sp.start:sp.end]
	default:
		return 0, "got " + sp.kind.String() + ", want a string or number"
	}
	if d.timeUnit < 0 {
		t, err := parseRFC3339(b)
		if err != "" {
			return 0, clip(b) + ": " + err
		}
		return t, ""
	}
	t, err := parseUnix(b, d.timeUnit)
	if err != "" {
		return 0, clip(b) + ": " + err
	}
	return t, ""
}

const errRange = "out of the int64 nanosecond range (years 1678-2262)"

// parseRFC3339 parses an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac] then
// Z or ±HH:MM; 't', 'z' and a space separator are accepted; digits past
// nanoseconds are truncated; leap second 60 is rejected, as by time.Parse).
func parseRFC3339(b []byte) (int64, string) {
	const bad = "not an RFC 3339 date-time"
	if len(b) < 20 {
		return 0, bad
	}
	num := func(s []byte) int {
		n := 0
		for _, c := range s {
			if !isDigit(c) {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, dd := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hh, mi, ss := num(b[11:13]), num(b[14:16]), num(b[17:19])
	if b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' ||
		y < 0 || mo < 0 || dd < 0 || hh < 0 || mi < 0 || ss < 0 {
		return 0, bad
	}
	if mo < 1 || mo > 12 || dd < 1 || dd > daysIn(y, mo) || hh > 23 || mi > 59 || ss > 59 {
		return 0, "date or time field out of range"
	}
	i := 19
	frac := 0
	if i < len(b) && b[i] == '.' {
		i++
		st := i
		for i < len(b) && isDigit(b[i]) {
			if i-st < 9 {
				frac = frac*10 + int(b[i]-'0')
			}
			i++
		}
		if i == st {
			return 0, bad
		}
		for k := i - st; k < 9; k++ {
			frac *= 10
		}
	}
	if i >= len(b) {
		return 0, bad + ": missing time zone"
	}
	off := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i < 6 || b[i+3] != ':' {
			return 0, bad
		}
		oh, om := num(b[i+1:i+3]), num(b[i+4:i+6])
		if oh < 0 || om < 0 {
			return 0, bad
		}
		if oh > 23 || om > 59 {
			return 0, "time zone offset out of range"
		}
		off = (oh*60 + om) * 60
		if b[i] == '-' {
			off = -off
		}
		i += 6
	default:
		return 0, bad
	}
	if i != len(b) {
		return 0, bad
	}
	secs := daysFromCivil(int64(y), int64(mo), int64(dd))*86400 + int64(hh*3600+mi*60+ss-off)
	t, ok := mulAdd(secs, 1e9, int64(frac))
	if !ok {
		return 0, errRange
	}
	return t, ""
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// mulAdd returns a*m + c (m > 0, |c| < m) and whether it fits in an int64.
func mulAdd(a, m, c int64) (int64, bool) {
	// Give c the sign of a so that a*m alone cannot overflow when the
	// sum does not.
	if a < 0 && c > 0 {
		a, c = a+1, c-m
	} else if a > 0 && c < 0 {
		a, c = a-1, c+m
	}
	if a > math.MaxInt64/m || a < math.MinInt64/m {
		return 0, false
	}
	p := a * m
	if c > 0 && p > math.MaxInt64-c || c < 0 && p < math.MinInt64-c {
		return 0, false
	}
	return p + c, true
}

// parseUnix converts a JSON number literal (or a string holding one) in units
// of 10^unitExp ns to ns, exactly, truncating sub-nanosecond digits toward
// zero.
func parseUnix(b []byte, unitExp int) (int64, string) {
	const bad = "not a JSON number"
	i := 0
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	intStart := i
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, bad
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(b) && b[i] == '.' {
		i++
		fracStart = i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == fracStart {
			return 0, bad
		}
		fracEnd = i
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		st := i
		for i < len(b) && isDigit(b[i]) {
			if exp < 1e6 {
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == st {
			return 0, bad
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) {
		return 0, bad
	}
	nint, nfrac := intEnd-intStart, fracEnd-fracStart
	e := exp - nfrac + unitExp
	keep := nint + nfrac
	if e < 0 {
		keep += e
	}
	const limit = uint64(1) << 63
	var v uint64
	for k := 0; k < keep; k++ {
		var c byte
		if k < nint {
			c = b[intStart+k]
		} else {
			c = b[fracStart+k-nint]
		}
		dg := uint64(c - '0')
		if v > (limit-dg)/10 {
			return 0, errRange
		}
		v = v*10 + dg
	}
	for k := 0; k < e && v != 0; k++ {
		if v > limit/10 {
			return 0, errRange
		}
		v *= 10
	}
	if neg {
		return -int64(v-1) - 1, "" // v == 1<<63 is math.MinInt64
	}
	if v == limit {
		return 0, errRange
	}
	return int64(v), ""
}
