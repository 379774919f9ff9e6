package sketch

import (
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// Kind identifies a sketch kind. Its numeric value is the kind byte of the
// wire envelope and never changes meaning.
type Kind uint8

// The sketch kinds.
const (
	KindHLL       Kind = 1 // distinct count (HyperLogLog)
	KindCMS       Kind = 2 // frequencies and heavy hitters (count-min + candidates)
	KindTDigest   Kind = 3 // quantiles and CDF (t-digest)
	KindReservoir Kind = 4 // bottom-k sample
	KindTheta     Kind = 5 // distinct count with set operations (KMV theta sketch)
	KindDDSketch  Kind = 6 // quantiles with relative error (DDSketch)
)

// String returns the kind's name ("hll", "cms", "tdigest", "reservoir",
// "theta", "ddsketch"), or "kind(N)".
func (k Kind) String() string {
	if in := info(k); in != nil {
		return in.Name
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Default parameters, used for zero fields of Params.
const (
	DefaultPrecision   = 14
	DefaultEpsilon     = 0.001
	DefaultDelta       = 0.01
	DefaultTopK        = 10
	DefaultCompression = 100
	DefaultSize        = 32
	// DefaultNominalEntries is a theta sketch's k: a relative standard
	// error of about 1/sqrt(k) = 1.6%, as Druid's default size 16384 gives
	// 0.8%.
	DefaultNominalEntries = 4096
	// DefaultRelativeAccuracy is a DDSketch's α: quantiles within 1%.
	DefaultRelativeAccuracy = 0.01
)

// Params selects a kind and its parameters. Zero values mean the defaults:
// Precision 14; Epsilon 0.001, Delta 0.01, TopK 10; Compression 100; Size 32;
// NominalEntries 4096; RelativeAccuracy 0.01.
// Fields that do not apply to Kind must be zero.
type Params struct {
	Kind      Kind
	Precision uint8   // HLL: 4..18
	Epsilon   float64 // CMS: relative error ε in (0, 1), at least 1e-6
	Delta     float64 // CMS: failure probability δ in (0, 1), at least 1e-9
	// TopK is the number of heavy hitters a CMS is sized to report (1..1000).
	// It keeps max(4*TopK, 16) candidates beside the table.
	TopK        int
	Compression float64 // TDigest: 10..1000
	Size        int     // Reservoir: 1..10000
	// Weighted makes a reservoir sample with probability proportional to
	// weight (Efraimidis–Spirakis exponential clocks driven by the tag).
	Weighted bool
	// NominalEntries is a theta sketch's k (16..65536): it keeps the k
	// smallest item hashes.
	NominalEntries int
	// RelativeAccuracy is a DDSketch's α in [0.001, 0.5]: quantiles are
	// within a factor 1±α.
	RelativeAccuracy float64
}

// Normalize returns p with the defaults of its kind filled in.
func (p Params) Normalize() Params {
	in := info(p.Kind)
	if in == nil {
		return p
	}
	for _, q := range in.params {
		if q.field.get(&p) == 0 {
			q.field.set(&p, q.Default)
		}
	}
	return p
}

// Validate reports, wrapping ErrParams, why the normalized p cannot build a
// sketch.
func (p Params) Validate() error {
	in := info(p.Kind)
	if in == nil {
		return fmt.Errorf("sketch: unknown kind %d: %w", uint8(p.Kind), ErrParams)
	}
	p = p.Normalize()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("sketch: %s: %s: %w", p.Kind, fmt.Sprintf(format, args...), ErrParams)
	}
	for i := range kinds {
		if kinds[i].Kind == p.Kind {
			continue
		}
		for _, q := range kinds[i].params {
			if _, ok := in.Param(q.Name); !ok && q.field.get(&p) != 0 {
				return bad("%s does not apply", q.Name)
			}
		}
	}
	if p.Weighted && !in.Weighted {
		return bad("weighted does not apply")
	}
	for _, q := range in.params {
		if msg := q.Check(q.field.get(&p)); msg != "" {
			return bad("%s %s", q.Name, msg)
		}
	}
	return nil
}

// Sketch is what every kind implements.
//
// No sketch is safe for concurrent use: the caller serializes every call on
// one sketch, including the read-looking ones (HLL.Estimate caches).
// Merge only reads other, so one sketch may be the other argument of merges
// running concurrently as long as nothing writes it meanwhile.
type Sketch interface {
	Kind() Kind
	// Params returns the normalized parameters (defaults filled in).
	Params() Params
	// Count is the number of values added (total weight for CMS), merges
	// included.
	Count() uint64
	// Merge folds other into the receiver. It fails, wrapping
	// ErrIncompatible, when kind, parameters or hash differ, and then leaves
	// the receiver unchanged.
	Merge(other Sketch) error
	// AppendBinary appends the versioned envelope (see
	// docs/format-sketches.md). It does not change the sketch.
	AppendBinary(dst []byte) ([]byte, error)
	// Clone returns an independent deep copy.
	Clone() Sketch
	// Size is the approximate heap footprint in bytes, for memory accounting.
	Size() int
}

// Sentinel errors. Decode errors wrap ErrCorrupt or ErrVersion.
var (
	// ErrIncompatible: a merge of sketches whose kind, parameters or hash
	// differ.
	ErrIncompatible = errors.New("sketch: incompatible sketches")
	// ErrCorrupt: a blob that is not a valid encoding.
	ErrCorrupt = errors.New("sketch: corrupt encoding")
	// ErrVersion: a blob written by a newer (or unknown) format version.
	ErrVersion = errors.New("sketch: unsupported encoding version")
	// ErrParams: invalid sketch parameters.
	ErrParams = errors.New("sketch: invalid parameters")
	// ErrNonFinite: a NaN or infinite value given to a numeric sketch.
	ErrNonFinite = errors.New("sketch: non-finite value")
	// ErrRange: a number beyond ±MaxInput given to a numeric sketch.
	ErrRange = errors.New("sketch: value out of range")
	// ErrOverflow: a count that would overflow uint64.
	ErrOverflow = errors.New("sketch: count overflow")
)

// New returns an empty sketch for p, after validating it.
func New(p Params) (Sketch, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.Normalize()
	switch p.Kind {
	case KindHLL:
		return NewHLL(p.Precision)
	case KindCMS:
		return NewCountMin(p.Epsilon, p.Delta, p.TopK)
	case KindTDigest:
		return NewTDigest(p.Compression)
	case KindTheta:
		return NewTheta(p.NominalEntries)
	case KindDDSketch:
		return NewDDSketch(p.RelativeAccuracy)
	default:
		return NewReservoir(p.Size, p.Weighted)
	}
}

// Hash is the item hash every HLL and CMS in sketchd is fed with: XXH64
// (github.com/cespare/xxhash/v2) with seed 0, hash id 1 in the envelope.
func Hash(b []byte) uint64 { return xxhash.Sum64(b) }

// HashString is Hash for a string, without a conversion.
func HashString(s string) uint64 { return xxhash.Sum64String(s) }

// Hash ids of the envelope.
const (
	hashNone  = 0 // the kind hashes nothing (t-digest, reservoir)
	hashXXH64 = 1 // XXH64, seed 0 (Hash)
)

// MergeAll folds every source into dst, as repeated dst.Merge would, but
// faster where the kind allows: t-digests collect all centroids and compress
// once; count-min sketches rank their heavy-hitter candidates once; sparse
// HLLs union their keys once. On error dst may hold a prefix of the merges (it is never left
// inconsistent) and the error names the failing source index.
func MergeAll(dst Sketch, srcs ...Sketch) error {
	if td, ok := dst.(*TDigest); ok {
		ds := make([]*TDigest, 0, len(srcs))
		for i, s := range srcs {
			o, ok := s.(*TDigest)
			if !ok || o.compression != td.compression {
				return fmt.Errorf("sketch: merge source %d: %w", i, incompatible(dst, s))
			}
			ds = append(ds, o)
		}
		return td.MergeMany(ds...)
	}
	if hl, ok := dst.(*HLL); ok {
		hs := make([]*HLL, 0, len(srcs))
		for i, s := range srcs {
			o, ok := s.(*HLL)
			if !ok || o == nil || o.p != hl.p {
				return fmt.Errorf("sketch: merge source %d: %w", i, incompatible(dst, s))
			}
			hs = append(hs, o)
		}
		return hl.MergeMany(hs...)
	}
	if cm, ok := dst.(*CountMin); ok {
		cs := make([]*CountMin, 0, len(srcs))
		for i, s := range srcs {
			o, ok := s.(*CountMin)
			if !ok || o == nil || o.Params() != cm.Params() {
				return fmt.Errorf("sketch: merge source %d: %w", i, incompatible(dst, s))
			}
			cs = append(cs, o)
		}
		return cm.MergeMany(cs...)
	}
	for i, s := range srcs {
		if err := dst.Merge(s); err != nil {
			return fmt.Errorf("sketch: merge source %d: %w", i, err)
		}
	}
	return nil
}

func incompatible(a, b Sketch) error {
	return fmt.Errorf("sketch: merge %s with %s: %w", describe(a), describe(b), ErrIncompatible)
}

// describe names a sketch for an error message, nil pointers included.
func describe(s Sketch) string {
	switch x := s.(type) {
	case nil:
		return "nil"
	case *HLL:
		if x == nil {
			return "nil *HLL"
		}
	case *CountMin:
		if x == nil {
			return "nil *CountMin"
		}
	case *TDigest:
		if x == nil {
			return "nil *TDigest"
		}
	case *Reservoir:
		if x == nil {
			return "nil *Reservoir"
		}
	case *Theta:
		if x == nil {
			return "nil *Theta"
		}
	case *DDSketch:
		if x == nil {
			return "nil *DDSketch"
		}
	}
	return fmt.Sprintf("%s %+v", s.Kind(), s.Params())
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// MaxInput is the largest magnitude of a number the numeric kinds
// (InputNumber: t-digest, DDSketch) take: 2^1022, about 4.49e307. The
// difference of any two such values is finite, which the t-digest's
// interpolations between centroids and its extremes need, and it is
// within DDSketch's index mapping at every relative accuracy (whose
// largest indexable value is 8.47e307 at α = 0.5, 1.26e308 at 0.01).
// Before this bound, a DDSketch refused a value past its mapping only
// when the event was applied, after it had been accepted (docs/decoding.md).
const MaxInput = 0x1p1022

// checkInput says why a numeric sketch refuses x, or nil.
func checkInput(kind string, x float64) error {
	switch {
	case !isFinite(x):
		return fmt.Errorf("sketch: %s add %g: %w", kind, x, ErrNonFinite)
	case x > MaxInput || x < -MaxInput:
		return fmt.Errorf("sketch: %s add %g: beyond ±%g: %w", kind, x, float64(MaxInput), ErrRange)
	}
	return nil
}
