package decode

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// fix is an aggregate value whose Bytes are d.vbuf[from:to].
type fix struct{ i, from, to int }

// Interning bounds: the decoder keeps up to maxInterned distinct keys
// (maxInternedBytes in total) so that repeated keys cost no allocation.
const (
	maxInterned      = 4096
	maxInternedBytes = 1 << 20
	maxInternKey     = 256
)

// aggInput says where an aggregate's input is in the event.
type aggInput struct {
	input  sketch.Input // what the aggregate's kind reads (the sketch registry)
	name   string
	path   string
	field  int // slot; -1 for a whole-event reservoir
	weight int // slot; -1 when unweighted
	wpath  string
}

// build fills d.ev from the spans of a parsed object raw, or says why the
// event is rejected.
func (d *Decoder) build(raw []byte, pos uint64, now int64) (Reason, string) {
	ev := &d.ev
	ev.Pos = pos
	ev.Raw = raw
	d.vbuf = d.vbuf[:0]
	if reason, detail := d.eventTime(raw, now); reason != "" {
		return reason, detail
	}
	if reason, detail := d.groupKey(raw); reason != "" {
		return reason, detail
	}
	if reason, detail := d.values(raw); reason != "" {
		return reason, detail
	}
	ev.Key = d.intern(d.key)
	return "", ""
}

// eventTime sets the event's time: its time field, or now for a stream on
// processing time.
func (d *Decoder) eventTime(raw []byte, now int64) (Reason, string) {
	if d.timeSlot < 0 {
		d.ev.Time = now
		return "", ""
	}
	sp := d.spans[d.timeSlot]
	if sp.kind == kNone || sp.kind == kNull {
		return ReasonMissingTime, fmt.Sprintf("time field %q is missing or null", d.timePath)
	}
	t, detail := d.time(raw, sp)
	if detail != "" {
		return ReasonBadTime, fmt.Sprintf("time field %q: %s", d.timePath, detail)
	}
	d.ev.Time = t
	return "", ""
}

// groupKey encodes the group-by dimensions into d.key.
func (d *Decoder) groupKey(raw []byte) (Reason, string) {
	d.key = d.key[:0]
	for i, slot := range d.dims {
		sp := d.spans[slot]
		switch sp.kind {
		case kNone, kNull:
			return ReasonMissingDimension, fmt.Sprintf("group_by field %q is missing or null", d.dimPaths[i])
		case kObject, kArray:
			return ReasonBadDimension, fmt.Sprintf("group_by field %q is an %s, want a string, number or boolean", d.dimPaths[i], sp.kind)
		case kString:
			v := raw[sp.start:sp.end]
			if sp.esc {
				d.vbuf = appendUnescaped(d.vbuf[:0], v)
				v = d.vbuf
			}
			// A key that is not UTF-8 could be stored but never asked
			// for: a query's where= and the answer's JSON are UTF-8.
			if !utf8.Valid(v) {
				d.vbuf = d.vbuf[:0]
				return ReasonBadDimension, fmt.Sprintf("group_by field %q is not valid UTF-8", d.dimPaths[i])
			}
			d.key = sketchd.AppendKeyValue(d.key, v)
			d.vbuf = d.vbuf[:0]
		default:
			d.key = sketchd.AppendKeyValue(d.key, raw[sp.start:sp.end])
		}
	}
	if len(d.key) > sketchd.MaxKeyLen {
		return ReasonOversize, fmt.Sprintf("group-by key of %d bytes exceeds the limit of %d", len(d.key), sketchd.MaxKeyLen)
	}
	return "", ""
}

// values sets the event's aggregate inputs. Escaped strings are unescaped
// into d.vbuf, which may grow: their Values get Bytes once every append is
// done.
func (d *Decoder) values(raw []byte) (Reason, string) {
	fixed := d.fixes[:0]
	for i := range d.aggs {
		a := &d.aggs[i]
		v := &d.ev.Values[i]
		*v = sketchd.Value{}
		sp := span{kind: kObject, start: 0, end: len(raw)}
		if a.field >= 0 {
			sp = d.spans[a.field]
		}
		if sp.kind == kNone || sp.kind == kNull {
			continue
		}
		switch a.input {
		case sketch.InputItem:
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
		case sketch.InputNumber:
			if sp.kind != kNumber {
				return ReasonWrongType, fmt.Sprintf("aggregate %q: field %q is a %s, want a number", a.name, a.path, sp.kind)
			}
			f, ok := parseFloat(raw[sp.start:sp.end])
			if !ok {
				return ReasonNonFinite, fmt.Sprintf("aggregate %q: field %q: %s is not a finite float64", a.name, a.path, clip(raw[sp.start:sp.end]))
			}
			if f > sketch.MaxInput || f < -sketch.MaxInput {
				return ReasonOutOfRange, fmt.Sprintf("aggregate %q: field %q: %s is beyond ±%g, the largest magnitude a numeric sketch takes", a.name, a.path, clip(raw[sp.start:sp.end]), float64(sketch.MaxInput))
			}
			v.Num = f
		case sketch.InputJSON:
			if reason, detail := d.sample(raw, a, sp, v); reason != "" {
				return reason, detail
			}
		}
		v.Present = true
	}
	for _, f := range fixed {
		d.ev.Values[f.i].Bytes = d.vbuf[f.from:f.to:f.to]
	}
	d.fixes = fixed[:0]
	return "", ""
}

// sample sets a JSON input (a reservoir's): the raw JSON of its field (or
// of the whole event), and its weight when it has one.
func (d *Decoder) sample(raw []byte, a *aggInput, sp span, v *sketchd.Value) (Reason, string) {
	if sp.kind == kString {
		sp.start--
		sp.end++
	}
	v.Bytes = raw[sp.start:sp.end:sp.end]
	if a.weight < 0 {
		return "", ""
	}
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
	if f, ok := parseDecimal(b); ok {
		return f, true
	}
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
