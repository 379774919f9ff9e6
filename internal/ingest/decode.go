package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// Reason is why an event was rejected. The values are stable: they are metric
// labels, keys of sketchd.Counters.Invalid and the reason header of a dead
// letter.
type Reason string

// The rejection reasons.
const (
	ReasonBadJSON          Reason = "bad_json"          // not valid JSON, or data after the value
	ReasonNotObject        Reason = "not_object"        // valid JSON, but not an object
	ReasonMissingTime      Reason = "missing_time"      // time field missing or null
	ReasonBadTime          Reason = "bad_time"          // time of the wrong type, unparsable or out of int64 ns range
	ReasonMissingDimension Reason = "missing_dimension" // group-by field missing or null
	ReasonBadDimension     Reason = "bad_dimension"     // group-by field is an object or array
	ReasonWrongType        Reason = "wrong_type"        // aggregate field or weight of the wrong JSON type or sign
	ReasonNonFinite        Reason = "non_finite"        // number overflows float64 (e.g. 1e400)
	ReasonOversize         Reason = "oversize"          // message or event larger than its limit, or a group-by key over MaxKeyBytes
	ReasonTooManyEvents    Reason = "too_many_events"   // beyond sketchd.MaxEventsPerMessage in one message
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{
	ReasonBadJSON, ReasonNotObject, ReasonMissingTime, ReasonBadTime,
	ReasonMissingDimension, ReasonBadDimension, ReasonWrongType,
	ReasonNonFinite, ReasonOversize, ReasonTooManyEvents,
}

// Default limits of DecodeOptions.
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultMaxEventBytes   = 64 << 10
	// MaxNesting bounds the nesting depth of objects and arrays in an event;
	// deeper input is bad_json.
	MaxNesting = 512
	// MaxKeyBytes bounds an event's encoded group-by key: the store cannot
	// keep a longer one (store.MaxKeyLen), so such an event is oversize.
	MaxKeyBytes = store.MaxKeyLen
)

// DecodeOptions are the limits of a Decoder.
type DecodeOptions struct {
	// MaxMessageBytes bounds a whole message; 0 means DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxEventBytes bounds one event (one line of NDJSON, or one JSON value
	// spread over several lines); 0 means DefaultMaxEventBytes.
	MaxEventBytes int
}

// Decoder turns NATS message payloads into sketchd.Events for one stream. It
// is compiled once from a stream spec and reused. It is NOT safe for
// concurrent use: it owns parser scratch. Creating one is cheap (about 2 µs
// and 30 small allocations), so make one per goroutine.
//
// Decoding is a pure function of (spec, options, msg, seq, now): no I/O and
// no clock.
type Decoder struct {
	root      node
	nslots    int
	timeSlot  int // -1: processing time
	timeUnit  int // decimal exponent of the unix unit in ns (9, 6, 3, 0); -1 for rfc3339
	timePath  string
	dims      []int // slots, in GroupBy order
	dimPaths  []string
	aggs      []aggPlan
	maxMsg    int
	maxEvent  int
	spans     []span // per slot, for the current event
	ev        sketchd.Event
	key       []byte
	vbuf      []byte // unescaped strings of the current event
	kbuf      []byte // unescaped object key
	tbuf      []byte // unescaped time string
	keys      map[string]string
	keysBytes int
	fixes     []fix
	lastEsc   bool // the last string scanned had escapes
	errMsg    string
	errPos    int
}

// fix is an aggregate value whose Bytes are d.vbuf[from:to].
type fix struct{ i, from, to int }

// Interning bounds: the decoder keeps up to maxInterned distinct keys
// (maxInternedBytes in total) so that repeated keys cost no allocation.
const (
	maxInterned      = 4096
	maxInternedBytes = 1 << 20
	maxInternKey     = 256
)

type aggPlan struct {
	kind   sketchd.AggregateKind
	name   string
	path   string
	field  int // slot; -1 for a whole-event reservoir
	weight int // slot; -1 when unweighted
	wpath  string
}

// node is a trie of the dotted paths the stream needs.
type node struct {
	slot  int // -1 when no path ends here
	names []string
	kids  []*node
	index map[string]*node // built when there are many kids
}

const indexAbove = 8

func (n *node) child(name []byte) *node {
	if n.index != nil {
		return n.index[string(name)]
	}
	for i, s := range n.names {
		if s == string(name) {
			return n.kids[i]
		}
	}
	return nil
}

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

// NewDecoder compiles a decoder for spec, which should be validated
// (sketchd.Stream.Validate). It reports an error for a spec it cannot decode
// for (empty path segment, unknown time format or sketch kind).
func NewDecoder(spec sketchd.Stream, opts DecodeOptions) (*Decoder, error) {
	d := &Decoder{
		root:     node{slot: -1},
		timeSlot: -1,
		timeUnit: -1,
		maxMsg:   opts.MaxMessageBytes,
		maxEvent: opts.MaxEventBytes,
		keys:     make(map[string]string),
	}
	if d.maxMsg <= 0 {
		d.maxMsg = DefaultMaxMessageBytes
	}
	if d.maxEvent <= 0 {
		d.maxEvent = DefaultMaxEventBytes
	}
	slots := map[string]int{}
	var errs []error
	add := func(what, path string) int {
		if s, ok := slots[path]; ok {
			return s
		}
		n := &d.root
		for seg := range splitPath(path) {
			if seg == "" {
				errs = append(errs, fmt.Errorf("ingest: %s: path %q has an empty segment", what, path))
				return -1
			}
			c := n.child([]byte(seg))
			if c == nil {
				c = &node{slot: -1}
				n.names = append(n.names, seg)
				n.kids = append(n.kids, c)
				if len(n.names) > indexAbove {
					n.index = make(map[string]*node, len(n.names))
					for i, s := range n.names {
						n.index[s] = n.kids[i]
					}
				}
			}
			n = c
		}
		n.slot = d.nslots
		slots[path] = d.nslots
		d.nslots++
		return n.slot
	}
	if spec.Time.Field != "" {
		d.timePath = spec.Time.Field
		d.timeSlot = add("time.field", spec.Time.Field)
		switch spec.Time.Format {
		case "", sketchd.TimeRFC3339:
			d.timeUnit = -1
		case sketchd.TimeUnixS:
			d.timeUnit = 9
		case sketchd.TimeUnixMS:
			d.timeUnit = 6
		case sketchd.TimeUnixUS:
			d.timeUnit = 3
		case sketchd.TimeUnixNS:
			d.timeUnit = 0
		default:
			errs = append(errs, fmt.Errorf("ingest: unknown time format %q", spec.Time.Format))
		}
	}
	for _, p := range spec.GroupBy {
		d.dims = append(d.dims, add("group_by", p))
		d.dimPaths = append(d.dimPaths, p)
	}
	for _, name := range spec.AggregateNames() {
		a := spec.Aggregates[name]
		p := aggPlan{kind: a.Sketch, name: name, path: a.Field, field: -1, weight: -1, wpath: a.Weight}
		switch a.Sketch {
		case sketchd.KindHLL, sketchd.KindCMS, sketchd.KindTDigest:
			if a.Field == "" {
				errs = append(errs, fmt.Errorf("ingest: aggregate %q: field is required for %s", name, a.Sketch))
			}
		case sketchd.KindReservoir:
		default:
			errs = append(errs, fmt.Errorf("ingest: aggregate %q: unknown sketch %q", name, a.Sketch))
		}
		if a.Field != "" {
			p.field = add("aggregates."+name+".field", a.Field)
		}
		if a.Weight != "" {
			if a.Sketch != sketchd.KindReservoir {
				errs = append(errs, fmt.Errorf("ingest: aggregate %q: weight applies to reservoir only", name))
			}
			p.weight = add("aggregates."+name+".weight", a.Weight)
		}
		d.aggs = append(d.aggs, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d.spans = make([]span, d.nslots)
	d.ev.Values = make([]sketchd.Value, len(d.aggs))
	return d, nil
}

func splitPath(p string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			i := 0
			for i < len(p) && p[i] != '.' {
				i++
			}
			if !yield(p[:i]) || i == len(p) {
				return
			}
			p = p[i+1:]
		}
	}
}

// Decode splits msg into events and reports each one exactly once, in order,
// to either ok or bad.
//
// A message holds one JSON object, or several separated by newlines (NDJSON;
// "\r\n" is fine, lines of only whitespace are ignored). An object may itself
// span lines (pretty-printed JSON): an event starts at the first non-blank
// line and ends with the line that closes its value. When a line does not
// start a valid value, that line alone is reported bad and decoding resumes
// at the next line, so a truncated line never swallows the good line after it.
//
// seq is the JetStream stream sequence of the message (0 for core NATS): the
// event with index i in the message (counting every reported event, good or
// bad) gets Pos = sketchd.Position(seq, i), or 0 when seq is 0. now (unix
// ns, from the caller's clock) is the event time of streams without a time
// field.
//
// Limits: a message larger than MaxMessageBytes is one bad(msg, oversize)
// call with the whole message (it fit through NATS, so it fits a dead-letter
// subject on the same server; the caller may truncate it). An event larger
// than MaxEventBytes is bad(line, oversize). Events beyond
// sketchd.MaxEventsPerMessage are reported bad(line, too_many_events) one
// line at a time without being parsed.
//
// Aliasing: the *Event, its Values and every Value.Bytes alias msg or the
// decoder's scratch and are valid only during the ok callback; copy what you
// keep. raw in bad aliases msg likewise. Event.Key is the exception: it is an
// ordinary immutable Go string (interned by the decoder) and may be retained.
//
// Within one object a duplicated key takes its last value. Strings are
// unescaped (\uXXXX, surrogate pairs; a lone surrogate becomes U+FFFD);
// invalid UTF-8 is kept byte for byte. Decode never panics.
func (d *Decoder) Decode(msg []byte, seq uint64, now int64, ok func(ev *sketchd.Event), bad func(raw []byte, reason Reason, detail string)) {
	if len(msg) > d.maxMsg {
		bad(msg, ReasonOversize, fmt.Sprintf("message of %d bytes exceeds the limit of %d", len(msg), d.maxMsg))
		return
	}
	index := 0
	p := 0
	for p < len(msg) {
		eol, next := lineEnd(msg, p)
		line := msg[p:eol]
		start := skipWS(line, 0)
		if start == len(line) {
			p = next
			continue
		}
		line = trimRightWS(line[start:])
		p += start
		pos := uint64(0)
		if seq > 0 {
			pos = sketchd.Position(seq, index)
		}
		index++
		switch {
		case index > sketchd.MaxEventsPerMessage:
			bad(line, ReasonTooManyEvents, fmt.Sprintf("a message carries at most %d events", sketchd.MaxEventsPerMessage))
			p = next
			continue
		case len(line) > d.maxEvent:
			bad(line, ReasonOversize, fmt.Sprintf("event line of %d bytes exceeds the limit of %d", len(line), d.maxEvent))
			p = next
			continue
		}
		w := msg[p:min(len(msg), p+d.maxEvent)]
		end, top, okParse := d.parse(w)
		if !okParse {
			if d.errPos >= len(w) && p+len(w) < len(msg) {
				bad(line, ReasonOversize, fmt.Sprintf("event exceeds the limit of %d bytes", d.maxEvent))
			} else {
				bad(line, ReasonBadJSON, fmt.Sprintf("%s at offset %d", d.errMsg, d.errPos))
			}
			p = next
			continue
		}
		// The rest of the line where the value ended must be blank.
		veol, vnext := lineEnd(msg, p+end)
		if skipWS(msg[:veol], p+end) != veol {
			bad(trimRightWS(msg[p:veol]), ReasonBadJSON, fmt.Sprintf("unexpected data after the JSON value at offset %d", end))
			p = vnext
			continue
		}
		raw := w[:end]
		p = vnext
		if top != kObject {
			bad(raw, ReasonNotObject, "the event must be a JSON object, got "+top.String())
			continue
		}
		if reason, detail := d.build(raw, pos, now); reason != "" {
			bad(raw, reason, detail)
			continue
		}
		d.ev.Raw = raw
		ok(&d.ev)
	}
}

// lineEnd returns the end of the line that contains p (without "\n") and the
// start of the next line.
func lineEnd(b []byte, p int) (eol, next int) {
	if i := bytes.IndexByte(b[p:], '\n'); i >= 0 {
		return p + i, p + i + 1
	}
	return len(b), len(b)
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func trimRightWS(b []byte) []byte {
	for len(b) > 0 && isWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
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

// build fills d.ev from the spans of a parsed object raw, or says why the
// event is rejected.
func (d *Decoder) build(raw []byte, pos uint64, now int64) (Reason, string) {
	ev := &d.ev
	ev.Pos = pos
	ev.Raw = raw
	d.vbuf = d.vbuf[:0]
	if d.timeSlot < 0 {
		ev.Time = now
	} else {
		sp := d.spans[d.timeSlot]
		if sp.kind == kNone || sp.kind == kNull {
			return ReasonMissingTime, fmt.Sprintf("time field %q is missing or null", d.timePath)
		}
		t, detail := d.time(raw, sp)
		if detail != "" {
			return ReasonBadTime, fmt.Sprintf("time field %q: %s", d.timePath, detail)
		}
		ev.Time = t
	}
	d.key = d.key[:0]
	for i, slot := range d.dims {
		sp := d.spans[slot]
		switch sp.kind {
		case kNone, kNull:
			return ReasonMissingDimension, fmt.Sprintf("group_by field %q is missing or null", d.dimPaths[i])
		case kObject, kArray:
			return ReasonBadDimension, fmt.Sprintf("group_by field %q is an %s, want a string, number or boolean", d.dimPaths[i], sp.kind)
		case kString:
			if sp.esc {
				d.vbuf = appendUnescaped(d.vbuf[:0], raw[sp.start:sp.end])
				d.key = sketchd.AppendKeyValue(d.key, d.vbuf)
				d.vbuf = d.vbuf[:0]
				break
			}
			fallthrough
		default:
			d.key = sketchd.AppendKeyValue(d.key, raw[sp.start:sp.end])
		}
	}
	if len(d.key) > MaxKeyBytes {
		return ReasonOversize, fmt.Sprintf("group-by key of %d bytes exceeds the limit of %d", len(d.key), MaxKeyBytes)
	}
	// Escaped strings are unescaped into d.vbuf, which may grow: their
	// Values get Bytes once every append is done.
	fixed := d.fixes[:0]
	for i := range d.aggs {
		a := &d.aggs[i]
		v := &ev.Values[i]
		*v = sketchd.Value{}
		sp := span{kind: kObject, start: 0, end: len(raw)}
		if a.field >= 0 {
			sp = d.spans[a.field]
		}
		if sp.kind == kNone || sp.kind == kNull {
			continue
		}
		switch a.kind {
		case sketchd.KindHLL, sketchd.KindCMS:
			switch sp.kind {
			case kObject, kArray:
				return ReasonWrongType, fmt.Sprintf("aggregate %q: field %q is an %s, want a string, number or boolean", a.name, a.path, sp.kind)
			case kString:
				if sp.esc {
					from := len(d.vbuf)
					d.vbuf = appendUnescaped(d.vbuf, raw[sp.start:sp.end])
					fixed = append(fixed, fix{i, from, len(d.vbuf)})
					break
				}
				fallthrough
			default:
				v.Bytes = raw[sp.start:sp.end:sp.end]
			}
		case sketchd.KindTDigest:
			if sp.kind != kNumber {
				return ReasonWrongType, fmt.Sprintf("aggregate %q: field %q is a %s, want a number", a.name, a.path, sp.kind)
			}
			f, ok := parseFloat(raw[sp.start:sp.end])
			if !ok {
				return ReasonNonFinite, fmt.Sprintf("aggregate %q: field %q: %s is not a finite float64", a.name, a.path, clip(raw[sp.start:sp.end]))
			}
			v.Num = f
		case sketchd.KindReservoir:
			if sp.kind == kString {
				sp.start--
				sp.end++
			}
			v.Bytes = raw[sp.start:sp.end:sp.end]
			if a.weight >= 0 {
				ws := d.spans[a.weight]
				if ws.kind != kNumber {
					return ReasonWrongType, fmt.Sprintf("aggregate %q: weight %q is %s, want a positive number", a.name, a.wpath, ws.kind)
				}
				f, ok := parseFloat(raw[ws.start:ws.end])
				if !ok {
					return ReasonNonFinite, fmt.Sprintf("aggregate %q: weight %q: %s is not a finite float64", a.name, a.wpath, clip(raw[ws.start:ws.end]))
				}
				if !(f > 0) {
					return ReasonWrongType, fmt.Sprintf("aggregate %q: weight %q is %s, want a positive number", a.name, a.wpath, clip(raw[ws.start:ws.end]))
				}
				v.Num = f
			}
		}
		v.Present = true
	}
	for _, f := range fixed {
		ev.Values[f.i].Bytes = d.vbuf[f.from:f.to:f.to]
	}
	d.fixes = fixed[:0]
	ev.Key = d.intern(d.key)
	return "", ""
}

// intern returns k as a string, sharing the string of an earlier equal key
// when it can: keys repeat a lot, and a shared immutable string is as safe to
// retain as a fresh one.
func (d *Decoder) intern(k []byte) string {
	if s, ok := d.keys[string(k)]; ok {
		return s
	}
	s := string(k)
	if len(s) <= maxInternKey {
		if len(d.keys) >= maxInterned || d.keysBytes+len(s) > maxInternedBytes {
			clear(d.keys)
			d.keysBytes = 0
		}
		d.keys[s] = s
		d.keysBytes += len(s)
	}
	return s
}

// parseFloat parses a validated JSON number literal; ok is false when it
// overflows float64.
func parseFloat(b []byte) (float64, bool) {
	// strconv does not retain s (its errors copy it), so aliasing b is safe.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// clip quotes at most 64 bytes of b for an error detail.
func clip(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}

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
