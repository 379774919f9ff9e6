package window

import (
	"fmt"
	"sync"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// pane is one open (key, pane) of the ingest side. It is owned by one shard.
type pane struct {
	key      string
	start    int64
	events   uint64
	applied  uint64
	sketches []sketch.Sketch // one per aggregate, created on first value
	dirty    bool
	size     int // bytes last accounted for this pane
}

// apply adds one event. tag is the reservoir tag for the event.
func (p *pane) apply(pl *plan, ev *item, tag uint64) error {
	p.events++
	if ev.pos > p.applied {
		p.applied = ev.pos
	}
	for i := range pl.aggs {
		v := &ev.values[i]
		if !v.Present {
			continue
		}
		sk := p.sketches[i]
		if sk == nil {
			var err error
			if sk, err = sketch.New(pl.aggs[i].params); err != nil {
				return err
			}
			p.sketches[i] = sk
		}
		if err := sketch.Add(sk, v.Bytes, v.Num, tag); err != nil {
			return fmt.Errorf("aggregate %q: %w", pl.aggs[i].name, err)
		}
	}
	p.dirty = true
	return nil
}

// sizeBytes estimates the pane's heap footprint.
func (p *pane) sizeBytes() int {
	n := 96 + len(p.key)
	for _, s := range p.sketches {
		if s != nil {
			n += s.Size()
		}
	}
	return n
}

// record encodes the pane for the store, one blob per slot of the
// stream's layout (Stream.SlotNames). Aggregates that saw no value are
// stored as empty sketches; a retired slot is a zero-length blob, so a
// removed aggregate's bytes leave a pane the next time it is written.
func (p *pane) record(pl *plan, final bool) (sketchd.PaneRecord, error) {
	r := sketchd.PaneRecord{
		Key:      p.key,
		Start:    p.start,
		Final:    final,
		Events:   p.events,
		Applied:  p.applied,
		Sketches: make([][]byte, len(pl.slots)),
	}
	// Encode into a pooled scratch buffer, then copy into one allocation
	// that the pane's blobs share (each capped at its own end).
	bp := scratch.Get().(*[]byte)
	buf := (*bp)[:0]
	ends := make([]int, 0, 8)
	for _, i := range pl.slots {
		if i < 0 {
			ends = append(ends, len(buf))
			continue
		}
		s := p.sketches[i]
		if s == nil {
			var err error
			if s, err = sketch.New(pl.aggs[i].params); err != nil {
				return r, err
			}
		}
		var err error
		if buf, err = s.AppendBinary(buf); err != nil {
			return r, fmt.Errorf("encode %q: %w", pl.aggs[i].name, err)
		}
		ends = append(ends, len(buf))
	}
	out := make([]byte, len(buf))
	copy(out, buf)
	prev := 0
	for i, e := range ends {
		r.Sketches[i] = out[prev:e:e]
		prev = e
	}
	if cap(buf) <= maxScratch {
		*bp = buf
		scratch.Put(bp)
	}
	return r, nil
}

// scratch holds encoding buffers of pane.record.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// maxScratch is the largest buffer scratch keeps.
const maxScratch = 1 << 20

// paneFromRecord decodes a stored pane for further updates. Its blobs are
// read by slot (sketchd.SlotBlob): a slot the pane does not have, or a
// zero-length blob, is an aggregate without values yet; blobs of retired
// slots or past the layout are dropped.
func paneFromRecord(pl *plan, r sketchd.PaneRecord) (*pane, error) {
	p := &pane{key: r.Key, start: r.Start, events: r.Events, applied: r.Applied, sketches: make([]sketch.Sketch, len(pl.aggs))}
	for slot, i := range pl.slots {
		b := sketchd.SlotBlob(&r, slot)
		if i < 0 || len(b) == 0 {
			continue
		}
		s, err := decodeAs(pl.aggs[i], b)
		if err != nil {
			return nil, err
		}
		p.sketches[i] = s
	}
	return p, nil
}

// decodeAs decodes one stored blob and checks it matches the aggregate.
func decodeAs(a aggregate, b []byte) (sketch.Sketch, error) {
	s, err := sketchd.DecodeSketch(b, a.params.Kind)
	if err != nil {
		return nil, fmt.Errorf("aggregate %q: %w", a.name, err)
	}
	return s, nil
}
