package decode

// Fast float parsing. Most numbers of real events are decimals such as a
// latency of 54.59815003314423 (strconv.FormatFloat's shortest form, as
// the load runner's generator writes them): at most 17 significant digits
// and no exponent. For those parseDecimal takes the exact path strconv
// takes too (Clinger's: when the digits m are below 2^53 and the fraction
// has at most 22 digits, m and 10^frac are exact float64s, and one IEEE
// division rounds m/10^frac correctly), without strconv's general reading
// first: 10 ns against 32 ns a number (BenchmarkParseFloat), of the ~330 ns
// BenchmarkDecode spends on a page view. The result is bit for bit
// strconv.ParseFloat's (FuzzParseDecimal).

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseDecimal parses a validated JSON number literal without an exponent
// whose digits fit the exact path; ok is false for any other, which
// strconv then parses.
func parseDecimal(b []byte) (float64, bool) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		i, neg = 1, true
	}
	var m uint64
	frac := -1 // digits after the point; -1 before it
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if m >= 1<<53/10 {
				return 0, false // m*10+9 could reach 2^53
			}
			m = m*10 + uint64(c-'0')
			if frac >= 0 {
				frac++
			}
		case c == '.':
			frac = 0
		default:
			return 0, false // an exponent
		}
	}
	if frac >= len(pow10) {
		return 0, false
	}
	f := float64(m)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}
