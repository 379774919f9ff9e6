package sketchd

import (
	"fmt"

	"github.com/sketchd/sketchd/sketch"
)

// AggregateKind names a sketch kind in a stream spec.
type AggregateKind string

// The sketch kinds.
const (
	KindHLL       AggregateKind = "hll"       // distinct count (HyperLogLog)
	KindCMS       AggregateKind = "cms"       // frequencies and top-k (count-min + heavy hitters)
	KindTDigest   AggregateKind = "tdigest"   // quantiles and CDF (t-digest)
	KindReservoir AggregateKind = "reservoir" // uniform sample (bottom-k)
)

// Aggregate is one named sketch kept per pane and key. Zero parameters take
// the kind's default (see Normalize).
type Aggregate struct {
	Sketch AggregateKind `json:"sketch" yaml:"sketch"`
	// Field is the dotted path of the value. Required for hll, cms and
	// tdigest; for a reservoir, "" samples the whole event.
	Field string `json:"field,omitempty" yaml:"field,omitempty"`

	Precision   int     `json:"precision,omitempty" yaml:"precision,omitempty"`     // hll: 4..18, default 14
	Epsilon     float64 `json:"epsilon,omitempty" yaml:"epsilon,omitempty"`         // cms: error εN, default 0.001
	Delta       float64 `json:"delta,omitempty" yaml:"delta,omitempty"`             // cms: failure probability, default 0.01
	TopK        int     `json:"top_k,omitempty" yaml:"top_k,omitempty"`             // cms: heavy hitters kept, default 10
	Compression float64 `json:"compression,omitempty" yaml:"compression,omitempty"` // tdigest: default 100
	Size        int     `json:"size,omitempty" yaml:"size,omitempty"`               // reservoir: sample size, default 32
	// Weight is the dotted path of a positive numeric weight for a weighted
	// reservoir; "" samples uniformly.
	Weight string `json:"weight,omitempty" yaml:"weight,omitempty"`
}

// Defaults of the aggregate parameters: the sketch package's, so a spec
// and the sketch it builds can never disagree.
const (
	DefaultPrecision   = sketch.DefaultPrecision
	DefaultEpsilon     = sketch.DefaultEpsilon
	DefaultDelta       = sketch.DefaultDelta
	DefaultTopK        = sketch.DefaultTopK
	DefaultCompression = sketch.DefaultCompression
	DefaultSize        = sketch.DefaultSize
)

// MaxCountMinTableBytes bounds a count-min table (per pane): a pane is
// written in one store transaction (at most 2.4 MiB with the default 16 MiB
// memtables), with its other sketches and the table's heavy-hitter
// candidates beside it.
const MaxCountMinTableBytes = 1 << 20

// MaxPaneSketchBytes bounds the sum, over a stream's aggregates, of
// MaxEncodedBytes (plus 4 bytes of framing each): Validate refuses a stream
// whose sketches could outgrow it. A pane (all its sketches) is written as
// one value in one store transaction, which holds at most 90% of 15% of the
// memtable size: 2,264,923 bytes with the default 16 MiB memtables. The
// ≥ 160 KiB left is the margin for the key (at most 32 KiB) and the pane
// header.
const MaxPaneSketchBytes = 2 << 20

// envelopeBytes bounds the envelope of a sketch blob around its payload:
// 16 bytes of header, at most 30 bytes of params and their length, the
// payload length (≤ 5 bytes) and the 4-byte CRC (see
// docs/format-sketches.md).
const envelopeBytes = 64

// MaxEncodedBytes is an upper bound of the encoded size of the aggregate's
// sketch (after Normalize), whatever the events: it is what each sketch can
// grow to in one pane.
//
//   - hll: dense, 8 bytes + 2^p registers; sparse, at most 2^p bytes of
//     list, 4·(2^p/100 + 1) of temporary set and 20 of headers before the
//     library converts it to dense. Bound: 2^p + 2^p/16 + 32.
//   - cms: table mode writes w·d uvarint counters (≤ 5 bytes each, so
//     5/4 of sketch.CountMinTableBytes), then max(4·top_k, 16) candidates of
//     at most sketch.CountMinCandidateItemBytes(top_k) bytes plus 12 bytes
//     of length and estimate each: at most sketch.MaxCandidateBytes in all.
//     Exact mode is smaller (its items are bounded by the table bytes).
//   - tdigest: the decoder accepts at most 100·δ + 100 centroids and fewer
//     than 5·δ buffered values, 18 bytes each (f64 + uvarint weight), plus
//     22 bytes of counts, min and max. This is a loose bound (a digest
//     holds about δ·ln N centroids): 186 KiB at the default δ = 100.
//   - reservoir: sketch.MaxReservoirBytes of items plus
//     sketch.MaxReservoirOverhead(size).
//
// Each adds envelopeBytes. An unknown kind returns 0.
func (a Aggregate) MaxEncodedBytes() int {
	a.Normalize()
	var n int
	switch a.Sketch {
	case KindHLL:
		m := 1 << min(max(a.Precision, 0), 30)
		n = m + m/16 + 32
	case KindCMS:
		c := max(4*a.TopK, 16)
		n = sketch.CountMinTableBytes(a.Epsilon, a.Delta)*5/4 + 16 +
			c*(sketch.CountMinCandidateItemBytes(a.TopK)+12)
	case KindTDigest:
		n = (int(100*a.Compression)+100+int(5*a.Compression))*18 + 22
	case KindReservoir:
		return sketch.MaxReservoirBytes + sketch.MaxReservoirOverhead(a.Size)
	default:
		return 0
	}
	return n + envelopeBytes
}

// Normalize sets the defaults of the aggregate's kind for zero parameters.
func (a *Aggregate) Normalize() {
	switch a.Sketch {
	case KindHLL:
		if a.Precision == 0 {
			a.Precision = DefaultPrecision
		}
	case KindCMS:
		if a.Epsilon == 0 {
			a.Epsilon = DefaultEpsilon
		}
		if a.Delta == 0 {
			a.Delta = DefaultDelta
		}
		if a.TopK == 0 {
			a.TopK = DefaultTopK
		}
	case KindTDigest:
		if a.Compression == 0 {
			a.Compression = DefaultCompression
		}
	case KindReservoir:
		if a.Size == 0 {
			a.Size = DefaultSize
		}
	}
}

func (a *Aggregate) validate() []*FieldError {
	var errs []*FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	notFor := func(field string, set bool) {
		if set {
			bad(field, "does not apply to sketch %q", a.Sketch)
		}
	}
	if a.Field != "" {
		if e := validPath(a.Field); e != "" {
			bad("field", "%s", e)
		}
	}
	switch a.Sketch {
	case KindHLL, KindCMS, KindTDigest:
		if a.Field == "" {
			bad("field", "required for sketch %q", a.Sketch)
		}
	case KindReservoir:
	default:
		bad("sketch", "unknown sketch %q: want hll, cms, tdigest or reservoir", a.Sketch)
		return errs
	}
	if a.Sketch == KindHLL {
		if a.Precision < 4 || a.Precision > 18 {
			bad("precision", "must be 4..18, got %d", a.Precision)
		}
	} else {
		notFor("precision", a.Precision != 0)
	}
	if a.Sketch == KindCMS {
		if !(a.Epsilon >= 1e-6 && a.Epsilon < 1) {
			bad("epsilon", "must be in [1e-6, 1), got %g", a.Epsilon)
		}
		if !(a.Delta >= 1e-9 && a.Delta < 1) {
			bad("delta", "must be in [1e-9, 1), got %g", a.Delta)
		}
		if a.TopK < 1 || a.TopK > 1000 {
			bad("top_k", "must be 1..1000, got %d", a.TopK)
		}
		if a.Epsilon >= 1e-6 && a.Epsilon < 1 && a.Delta >= 1e-9 && a.Delta < 1 {
			if tb := sketch.CountMinTableBytes(a.Epsilon, a.Delta); tb > MaxCountMinTableBytes {
				bad("epsilon", "epsilon %g with delta %g needs a %d KiB table in every pane, more than the %d KiB limit: raise epsilon or delta",
					a.Epsilon, a.Delta, tb>>10, MaxCountMinTableBytes>>10)
			}
		}
	} else {
		notFor("epsilon", a.Epsilon != 0)
		notFor("delta", a.Delta != 0)
		notFor("top_k", a.TopK != 0)
	}
	if a.Sketch == KindTDigest {
		if !(a.Compression >= 10 && a.Compression <= 1000) {
			bad("compression", "must be 10..1000, got %g", a.Compression)
		}
	} else {
		notFor("compression", a.Compression != 0)
	}
	if a.Sketch == KindReservoir {
		if a.Size < 1 || a.Size > 10000 {
			bad("size", "must be 1..10000, got %d", a.Size)
		}
		if a.Weight != "" {
			if e := validPath(a.Weight); e != "" {
				bad("weight", "%s", e)
			}
		}
	} else {
		notFor("size", a.Size != 0)
		notFor("weight", a.Weight != "")
	}
	return errs
}
