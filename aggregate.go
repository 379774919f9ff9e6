package sketchd

import (
	"fmt"
	"time"

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
	KindTheta     AggregateKind = "theta"     // distinct count with set operations (KMV theta sketch)
	KindDDSketch  AggregateKind = "ddsketch"  // quantiles within a relative error (DDSketch)
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
	// NominalEntries is a theta sketch's k, default 4096.
	NominalEntries int `json:"nominal_entries,omitempty" yaml:"nominal_entries,omitempty"`
	// RelativeAccuracy is a ddsketch's α, default 0.01.
	RelativeAccuracy float64 `json:"relative_accuracy,omitempty" yaml:"relative_accuracy,omitempty"`
	// Weight is the dotted path of a positive numeric weight for a weighted
	// reservoir; "" samples uniformly.
	Weight string `json:"weight,omitempty" yaml:"weight,omitempty"`
	// Since is set on an aggregate an alter added (PATCH): the first pane
	// start it holds every event of. Windows that start before it are
	// refused for this aggregate. nil: it has existed since the stream was
	// created (or a backfill completed it).
	Since *time.Time `json:"since,omitempty" yaml:"since,omitempty"`
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

	DefaultNominalEntries   = sketch.DefaultNominalEntries
	DefaultRelativeAccuracy = sketch.DefaultRelativeAccuracy
)

// MaxCountMinTableBytes bounds a count-min table (per pane): a pane is
// written as one store value (at most 2,264,923 bytes with its key, the
// store's MaxPaneEntryBytes), with its other sketches and the table's
// heavy-hitter candidates beside it.
const MaxCountMinTableBytes = 1 << 20

// MaxPaneSketchBytes bounds the sum, over a stream's aggregates, of
// MaxEncodedBytes (plus 4 bytes of framing each): Validate refuses a stream
// whose sketches could outgrow it. A pane (all its sketches) is written as
// one value, at most 2,264,923 bytes with its key (the store's
// MaxPaneEntryBytes: 90% of 15% of 16 MiB; values of 1 MiB or more go to
// Badger's value log, so they do not need a memtable that large). The
// ≥ 160 KiB left is the margin for the key (at most 32 KiB) and the pane
// header.
const MaxPaneSketchBytes = 2 << 20

// paramFields ties each numeric sketch parameter, by its name in the
// sketch registry (sketch.Param.Name, also its spec key), to its field: the
// one place a spec field meets the sketch's parameter. Defaults, ranges and
// which kind takes which parameter are the registry's.
func (a *Aggregate) paramFields() [8]paramField {
	return [...]paramField{
		{name: "precision", i: &a.Precision},
		{name: "epsilon", f: &a.Epsilon},
		{name: "delta", f: &a.Delta},
		{name: "top_k", i: &a.TopK},
		{name: "compression", f: &a.Compression},
		{name: "size", i: &a.Size},
		{name: "nominal_entries", i: &a.NominalEntries},
		{name: "relative_accuracy", f: &a.RelativeAccuracy},
	}
}

// paramField is one numeric parameter field of an Aggregate: an int or a
// float64.
type paramField struct {
	name string
	i    *int
	f    *float64
}

func (p paramField) get() float64 {
	if p.i != nil {
		return float64(*p.i)
	}
	return *p.f
}

func (p paramField) set(v float64) {
	if p.i != nil {
		*p.i = int(v)
	} else {
		*p.f = v
	}
}

// kind returns the registry entry of the aggregate's sketch kind.
func (a Aggregate) kind() (sketch.KindInfo, bool) { return sketch.KindNamed(string(a.Sketch)) }

// Normalize sets the defaults of the aggregate's kind for zero parameters.
func (a *Aggregate) Normalize() {
	k, ok := a.kind()
	if !ok {
		return
	}
	for _, f := range a.paramFields() {
		if q, ok := k.Param(f.name); ok && f.get() == 0 {
			f.set(q.Default)
		}
	}
}

// MaxEncodedBytes is an upper bound of the encoded size of the aggregate's
// sketch (after Normalize), whatever the events: what each sketch can grow
// to in one pane (see sketch.Params.MaxEncodedBytes). An unknown kind
// returns 0.
func (a Aggregate) MaxEncodedBytes() int {
	p, err := a.SketchParams()
	if err != nil {
		return 0
	}
	return p.MaxEncodedBytes()
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
	k, ok := a.kind()
	if !ok {
		bad("sketch", "unknown sketch %q: want %s", a.Sketch, sketch.KindNames())
		return errs
	}
	if a.Field == "" && k.FieldRequired() {
		bad("field", "required for sketch %q", a.Sketch)
	}
	inRange := map[string]bool{}
	for _, f := range a.paramFields() {
		q, ok := k.Param(f.name)
		switch msg := q.Check(f.get()); {
		case !ok:
			notFor(f.name, f.get() != 0)
		case msg != "":
			bad(f.name, "%s", msg)
		default:
			inRange[f.name] = true
		}
	}
	if k.Kind == sketch.KindCMS && inRange["epsilon"] && inRange["delta"] {
		// A store limit, not the sketch's: see MaxCountMinTableBytes.
		if tb := sketch.CountMinTableBytes(a.Epsilon, a.Delta); tb > MaxCountMinTableBytes {
			bad("epsilon", "epsilon %g with delta %g needs a %d KiB table in every pane, more than the %d KiB limit: raise epsilon or delta",
				a.Epsilon, a.Delta, tb>>10, MaxCountMinTableBytes>>10)
		}
	}
	if k.Weighted {
		if a.Weight != "" {
			if e := validPath(a.Weight); e != "" {
				bad("weight", "%s", e)
			}
		}
	} else {
		notFor("weight", a.Weight != "")
	}
	return errs
}
