package decode

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// kind is the JSON type of a value.
type kind uint8

const (
	kNone kind = iota // absent
	kString
	kNumber
	kTrue
	kFalse
	kNull
	kObject
	kArray
)

// span locates a value in the event. For a string, [start, end) is its
// content between the quotes and esc says whether it has escapes; for other
// values it is the literal text.
type span struct {
	kind       kind
	esc        bool
	start, end int
}

func (k kind) String() string {
	switch k {
	case kString:
		return "string"
	case kNumber:
		return "number"
	case kTrue, kFalse:
		return "boolean"
	case kNull:
		return "null"
	case kObject:
		return "object"
	case kArray:
		return "array"
	}
	return "nothing"
}

// parse validates the JSON value at the start of b (which starts with a
// non-blank byte) and records the spans of the paths the stream needs. It
// returns the end of the value and its kind; on failure d.errMsg and d.errPos
// say why.
func (d *Decoder) parse(b []byte) (int, kind, bool) {
	clear(d.spans)
	d.errMsg, d.errPos = "", 0
	return d.value(b, 0, &d.root, 0)
}

func (d *Decoder) fail(msg string, i int) (int, kind, bool) {
	d.errMsg, d.errPos = msg, i
	return i, kNone, false
}

// value parses the value at b[i]. n is the trie node of the value (nil or
// childless when nothing below it is needed).
func (d *Decoder) value(b []byte, i int, n *node, depth int) (int, kind, bool) {
	if i >= len(b) {
		return d.fail("unexpected end of input", i)
	}
	switch c := b[i]; c {
	case '{':
		return d.object(b, i, n, depth+1)
	case '[':
		return d.array(b, i, depth+1)
	case '"':
		return d.str(b, i)
	case 't':
		return d.literal(b, i, "true", kTrue)
	case 'f':
		return d.literal(b, i, "false", kFalse)
	case 'n':
		return d.literal(b, i, "null", kNull)
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return d.number(b, i)
		}
		return d.fail("invalid character "+strconv.QuoteRune(rune(c))+" looking for a value", i)
	}
}

func (d *Decoder) literal(b []byte, i int, lit string, k kind) (int, kind, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return d.fail("invalid literal", i)
	}
	return i + len(lit), k, true
}

func (d *Decoder) object(b []byte, i int, n *node, depth int) (int, kind, bool) {
	if depth > MaxNesting {
		return d.fail("nesting too deep", i)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, kObject, true
	}
	for {
		if i >= len(b) {
			return d.fail("unexpected end of input", i)
		}
		if b[i] != '"' {
			return d.fail("expected a string object key", i)
		}
		j, _, ok := d.str(b, i)
		if !ok {
			return j, kNone, false
		}
		var c *node
		if n != nil && len(n.names) > 0 {
			name := b[i+1 : j-1]
			if d.lastEsc {
				d.kbuf = appendUnescaped(d.kbuf[:0], name)
				name = d.kbuf
			}
			c = n.child(name)
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return d.fail("expected ':' after an object key", i)
		}
		i = skipWS(b, i+1)
		vs := i
		var k kind
		i, k, ok = d.value(b, i, c, depth)
		if !ok {
			return i, kNone, false
		}
		if c != nil && c.slot >= 0 {
			sp := span{kind: k, start: vs, end: i}
			if k == kString {
				sp.start++
				sp.end--
				sp.esc = d.lastEsc
			}
			d.spans[c.slot] = sp
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return d.fail("unexpected end of input", i)
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, kObject, true
		default:
			return d.fail("expected ',' or '}' in an object", i)
		}
	}
}

func (d *Decoder) array(b []byte, i int, depth int) (int, kind, bool) {
	if depth > MaxNesting {
		return d.fail("nesting too deep", i)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, kArray, true
	}
	for {
		var ok bool
		i, _, ok = d.value(b, i, nil, depth)
		if !ok {
			return i, kNone, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return d.fail("unexpected end of input", i)
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1, kArray, true
		default:
			return d.fail("expected ',' or ']' in an array", i)
		}
	}
}

// strPlain marks the bytes that may appear unescaped in a JSON string and
// need no attention.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans the string at b[i] == '"' and returns the index after its
// closing quote; d.lastEsc says whether it had escapes.
func (d *Decoder) str(b []byte, i int) (int, kind, bool) {
	esc := false
	i++
	for {
		// Eight bytes at a time while none is '"', '\\' or a control byte
		// (the tests are exact about absence).
		for i+8 <= len(b) {
			const lo, hi = 0x0101010101010101, 0x8080808080808080
			w := binary.LittleEndian.Uint64(b[i:])
			q, bs := w^(lo*'"'), w^(lo*'\\')
			if ((q-lo)&^q|(bs-lo)&^bs|(w-lo*0x20)&^w)&hi != 0 {
				break
			}
			i += 8
		}
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			return d.fail("unterminated string", i)
		}
		switch b[i] {
		case '"':
			d.lastEsc = esc
			return i + 1, kString, true
		case '\\':
			esc = true
			if i+1 >= len(b) {
				return d.fail("unterminated string", i+1)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return d.fail("invalid \\u escape", i)
				}
				i += 6
			default:
				return d.fail("invalid escape in string", i)
			}
		default:
			return d.fail("control character in string", i)
		}
	}
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (d *Decoder) number(b []byte, i int) (int, kind, bool) {
	j := i
	if b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	default:
		return d.fail("invalid number", j)
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return d.fail("invalid number: digit expected after '.'", j)
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return d.fail("invalid number: digit expected in exponent", j)
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	return j, kNumber, true
}

// appendUnescaped appends the content of a validated JSON string with its
// escapes resolved. The result is never longer than s.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		c := s[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i : i+4])
			i += 4
			if r >= 0xD800 && r < 0xE000 {
				r2 := rune(-1)
				if r < 0xDC00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hex4(s[i+2 : i+6])
				}
				if r2 >= 0xDC00 && r2 < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

// isWS reports JSON whitespace.
func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}
