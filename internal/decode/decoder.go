package decode

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/sketch"
)

// Default limits of Options.
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultMaxEventBytes   = 64 << 10
	// MaxNesting bounds the nesting depth of objects and arrays in an event;
	// deeper input is bad_json. (An event's encoded group-by key is bounded
	// by sketchd.MaxKeyLen: a longer one is oversize.)
	MaxNesting = 512
)

// Options are the limits of a Decoder. Zero (or negative) values take the
// defaults of DefaultOptions.
type Options struct {
	// MaxMessageBytes bounds a whole message. Default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxEventBytes bounds one event (one line of NDJSON, or one JSON value
	// spread over several lines). Default DefaultMaxEventBytes.
	MaxEventBytes int
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxMessageBytes: DefaultMaxMessageBytes, MaxEventBytes: DefaultMaxEventBytes}
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
	aggs      []aggInput
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

// New compiles a decoder for spec, which should be validated
// (sketchd.Stream.Validate). It reports an error for a spec it cannot decode
// for (empty path segment, unknown time format or sketch kind).
func New(spec sketchd.Stream, opts Options) (*Decoder, error) {
	opts = defaults.Fill(opts, DefaultOptions())
	d := &Decoder{
		root:     node{slot: -1},
		timeSlot: -1,
		timeUnit: -1,
		maxMsg:   opts.MaxMessageBytes,
		maxEvent: opts.MaxEventBytes,
		keys:     make(map[string]string),
	}
	c := compiler{d: d}
	c.time(spec.Time)
	c.groupBy(spec.GroupBy)
	c.aggregates(spec)
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	d.spans = make([]span, d.nslots)
	d.ev.Values = make([]sketchd.Value, len(d.aggs))
	return d, nil
}

// compiler builds a Decoder's plan from a spec, collecting every error.
type compiler struct {
	d    *Decoder
	errs []error
}

func (c *compiler) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("decode: "+format, args...))
}

// slot returns the span slot of path, adding it to the trie when new (a
// path used twice is scanned once); -1 (and an error) for a path with an
// empty segment.
func (c *compiler) slot(what, path string) int {
	n, ok := c.d.root.insert(path)
	if !ok {
		c.errorf("%s: path %q has an empty segment", what, path)
		return -1
	}
	if n.slot < 0 {
		n.slot = c.d.nslots
		c.d.nslots++
	}
	return n.slot
}

// time plans the event time: a field and its unit, or processing time.
func (c *compiler) time(t sketchd.TimeSpec) {
	if t.Field == "" {
		return // processing time
	}
	d := c.d
	d.timePath = t.Field
	d.timeSlot = c.slot("time.field", t.Field)
	switch t.Format {
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
		c.errorf("unknown time format %q", t.Format)
	}
}

// groupBy plans the key's dimensions, in spec order.
func (c *compiler) groupBy(paths []string) {
	for _, p := range paths {
		c.d.dims = append(c.d.dims, c.slot("group_by", p))
		c.d.dimPaths = append(c.d.dimPaths, p)
	}
}

// aggregates plans each aggregate's input, in sketchd.Stream.AggregateNames
// order.
func (c *compiler) aggregates(spec sketchd.Stream) {
	for _, name := range spec.AggregateNames() {
		a := spec.Aggregates[name]
		in := aggInput{name: name, path: a.Field, field: -1, weight: -1, wpath: a.Weight}
		k, ok := sketch.KindNamed(string(a.Sketch))
		switch {
		case !ok:
			c.errorf("aggregate %q: unknown sketch %q", name, a.Sketch)
		case a.Field == "" && k.FieldRequired():
			c.errorf("aggregate %q: field is required for %s", name, a.Sketch)
		}
		in.input = k.Input
		if a.Field != "" {
			in.field = c.slot("aggregates."+name+".field", a.Field)
		}
		if a.Weight != "" {
			if !ok || !k.Weighted {
				c.errorf("aggregate %q: weight applies to %s only", name, weightedKinds())
			}
			in.weight = c.slot("aggregates."+name+".weight", a.Weight)
		}
		c.d.aggs = append(c.d.aggs, in)
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

func trimRightWS(b []byte) []byte {
	for len(b) > 0 && isWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// weightedKinds names the kinds that take a weight ("reservoir").
func weightedKinds() string {
	var names []string
	for _, k := range sketch.Kinds() {
		if k.Weighted {
			names = append(names, k.Name)
		}
	}
	return strings.Join(names, ", ")
}
