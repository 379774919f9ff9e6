package sketch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The registry of kinds: for each kind, its name, what it reads from an
// event, its parameters (defaults and valid ranges) and the bound of its
// encoding. Params.Normalize, Params.Validate, Params.MaxEncodedBytes and
// Kind.String read it, and so do the stream spec (package sketchd), the
// decoder and the API, so that a new kind is added here and in its own file,
// not in every package that handles sketches.

// Input is what a kind reads from each event.
type Input uint8

// The inputs.
const (
	// InputItem is a scalar field (a string, number or boolean) as its
	// canonical text: a string's content, a number's or boolean's JSON
	// literal. The sketch is fed its Hash.
	InputItem Input = iota + 1
	// InputNumber is a numeric field as a finite float64.
	InputNumber
	// InputJSON is the raw JSON of a field, or of the whole event when the
	// aggregate names no field, with an optional positive weight.
	InputJSON
)

// String returns "item", "number", "json", or "input(N)".
func (i Input) String() string {
	switch i {
	case InputItem:
		return "item"
	case InputNumber:
		return "number"
	case InputJSON:
		return "json"
	}
	return fmt.Sprintf("input(%d)", uint8(i))
}

// Param describes one numeric parameter of a kind.
type Param struct {
	// Name is the parameter's name in a stream spec and in errors:
	// "precision", "top_k".
	Name string
	// Default is the value a zero parameter takes.
	Default float64
	// Min and Max bound the valid values: Min ≤ v ≤ Max, or Min ≤ v < Max
	// when MaxOpen.
	Min, Max float64
	MaxOpen  bool
	// Integer says the parameter is a whole number.
	Integer bool

	field paramField
}

// Check returns "" when v is in the parameter's range, else why not: "must
// be 4..18, got 30" or "must be in [1e-6, 1), got 2".
func (q Param) Check(v float64) string {
	if v >= q.Min && (v < q.Max || !q.MaxOpen && v == q.Max) {
		return ""
	}
	got := fmt.Sprintf("%g", v)
	if q.Integer && v == float64(int64(v)) {
		got = strconv.FormatInt(int64(v), 10)
	}
	if q.MaxOpen {
		return fmt.Sprintf("must be in [%s, %s), got %s", bound(q.Min), bound(q.Max), got)
	}
	return fmt.Sprintf("must be %s..%s, got %s", bound(q.Min), bound(q.Max), got)
}

// bound formats a range bound as written in the docs: 1e-6, not 1e-06.
func bound(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	s = strings.Replace(s, "e-0", "e-", 1)
	return strings.Replace(s, "e+0", "e+", 1)
}

// KindInfo is a kind's entry in the registry.
type KindInfo struct {
	Kind Kind
	// Name is the kind's name in a stream spec and in the API ("hll").
	Name string
	// Input is what the kind reads from an event (see Add).
	Input Input
	// Weighted says the kind takes an optional weight per event
	// (Params.Weighted).
	Weighted bool
	// params are the kind's numeric parameters, in the order of its wire
	// encoding.
	params []Param
	// maxEncoded bounds the encoding of a sketch of the normalized p.
	maxEncoded func(p Params) int
	// hashed says the kind hashes its items with Hash (hash id 1).
	hashed bool
	// MergeApprox says merging two sketches is itself approximate: the
	// result depends on the order and grouping of the merges, and each
	// level of merging adds to its error (t-digest: centroids are
	// compressed again). The other kinds' merges are exact: any grouping
	// gives the same sketch as one merge of all the parts.
	MergeApprox bool
}

// FieldRequired says an aggregate of the kind must name the field it reads
// (InputJSON reads the whole event without one).
func (k KindInfo) FieldRequired() bool { return k.Input != InputJSON }

// envelopeBytes bounds the envelope of a sketch blob around its payload:
// 16 bytes of header, at most 30 bytes of params and their length, the
// payload length (≤ 5 bytes) and the 4-byte CRC (see
// docs/format-sketches.md).
const envelopeBytes = 64

// kinds is the registry, in Kind order. It holds data and pure functions
// only: nothing here may call back into Params.Normalize or Validate.
var kinds = [...]KindInfo{
	{
		Kind: KindHLL, Name: "hll", Input: InputItem, hashed: true,
		params: []Param{
			param("precision", fieldPrecision, DefaultPrecision, 4, 18),
		},
		// Dense: 8 bytes + 2^p registers. Sparse: at most 2^p bytes of
		// list, 4·(2^p/100 + 1) of temporary set and 20 of headers before
		// the library converts it to dense.
		maxEncoded: func(p Params) int {
			m := 1 << min(p.Precision, 30)
			return m + m/16 + 32 + envelopeBytes
		},
	},
	{
		Kind: KindCMS, Name: "cms", Input: InputItem, hashed: true,
		params: []Param{
			param("epsilon", fieldEpsilon, DefaultEpsilon, 1e-6, 1).maxOpen(),
			param("delta", fieldDelta, DefaultDelta, 1e-9, 1).maxOpen(),
			param("top_k", fieldTopK, DefaultTopK, 1, 1000),
		},
		// Table mode writes w·d uvarint counters (≤ 5 bytes each, so 5/4 of
		// the table bytes), then max(4·top_k, 16) candidates of at most
		// CountMinCandidateItemBytes(top_k) bytes plus 12 bytes of length
		// and estimate each: at most MaxCandidateBytes in all. Exact mode
		// is smaller (its items are bounded by the table bytes).
		maxEncoded: func(p Params) int {
			w, d := cmsDims(p.Epsilon, p.Delta)
			c := max(4*p.TopK, 16)
			return 4*w*d*5/4 + 16 + c*(CountMinCandidateItemBytes(p.TopK)+12) + envelopeBytes
		},
	},
	{
		Kind: KindTDigest, Name: "tdigest", Input: InputNumber, MergeApprox: true,
		params: []Param{
			param("compression", fieldCompression, DefaultCompression, 10, 1000),
		},
		// The decoder accepts at most 100·δ + 100 centroids and fewer than
		// 5·δ buffered values, 18 bytes each (f64 + uvarint weight), plus 22
		// bytes of counts, min and max. A loose bound (a digest holds about
		// δ·ln N centroids): 186 KiB at the default δ = 100.
		maxEncoded: func(p Params) int {
			return (int(100*p.Compression)+100+int(5*p.Compression))*18 + 22 + envelopeBytes
		},
	},
	{
		Kind: KindReservoir, Name: "reservoir", Input: InputJSON, Weighted: true,
		params: []Param{
			param("size", fieldSize, DefaultSize, 1, 10000),
		},
		// MaxReservoirOverhead includes the envelope.
		maxEncoded: func(p Params) int {
			return MaxReservoirBytes + MaxReservoirOverhead(p.Size)
		},
	},
	{
		Kind: KindTheta, Name: "theta", Input: InputItem, hashed: true,
		params: []Param{
			param("nominal_entries", fieldNominalEntries, DefaultNominalEntries, 16, 1<<16),
		},
		// θ (8 bytes), the count of hashes (≤ 3 bytes) and k gaps of at
		// most 10 bytes each (about 8 + log2(k) bits when full).
		maxEncoded: func(p Params) int { return 11 + 10*p.NominalEntries + envelopeBytes },
	},
	{
		Kind: KindDDSketch, Name: "ddsketch", Input: InputNumber,
		params: []Param{
			param("relative_accuracy", fieldRelativeAccuracy, DefaultRelativeAccuracy, 0.001, 0.5),
		},
		// min, max, the zero count, and per store its bin count and at most
		// DDSketchMaxBins bins of ≤ 5 bytes of index gap (ascending within
		// 2^31) and ≤ 10 of count.
		maxEncoded: func(p Params) int {
			return 16 + 10 + 2*(5+15*DDSketchMaxBins(p.RelativeAccuracy)) + envelopeBytes
		},
	},
}

// param describes the parameter held in field.
func param(name string, field paramField, def, lo, hi float64) Param {
	return Param{Name: name, Default: def, Min: lo, Max: hi, Integer: field.integer(), field: field}
}

// paramField is a numeric field of Params. Its methods are plain switches,
// not closures, so that Normalize and Validate do not move their Params to
// the heap.
type paramField uint8

const (
	fieldPrecision paramField = iota + 1
	fieldEpsilon
	fieldDelta
	fieldTopK
	fieldCompression
	fieldSize
	fieldNominalEntries
	fieldRelativeAccuracy
)

func (f paramField) integer() bool {
	return f == fieldPrecision || f == fieldTopK || f == fieldSize || f == fieldNominalEntries
}

func (f paramField) get(p *Params) float64 {
	switch f {
	case fieldPrecision:
		return float64(p.Precision)
	case fieldEpsilon:
		return p.Epsilon
	case fieldDelta:
		return p.Delta
	case fieldTopK:
		return float64(p.TopK)
	case fieldCompression:
		return p.Compression
	case fieldSize:
		return float64(p.Size)
	case fieldNominalEntries:
		return float64(p.NominalEntries)
	case fieldRelativeAccuracy:
		return p.RelativeAccuracy
	}
	return 0
}

func (f paramField) set(p *Params, v float64) {
	switch f {
	case fieldPrecision:
		p.Precision = uint8(v)
	case fieldEpsilon:
		p.Epsilon = v
	case fieldDelta:
		p.Delta = v
	case fieldTopK:
		p.TopK = int(v)
	case fieldCompression:
		p.Compression = v
	case fieldSize:
		p.Size = int(v)
	case fieldNominalEntries:
		p.NominalEntries = int(v)
	case fieldRelativeAccuracy:
		p.RelativeAccuracy = v
	}
}

// maxOpen returns q with its upper bound excluded.
func (q Param) maxOpen() Param {
	q.MaxOpen = true
	return q
}

// info returns the registry entry of k, or nil for an unknown kind.
func info(k Kind) *KindInfo {
	if k == 0 || int(k) > len(kinds) {
		return nil
	}
	return &kinds[k-1]
}

// Kinds returns the registry: every kind, in Kind order.
func Kinds() []KindInfo { return slices.Clone(kinds[:]) }

// Info returns the registry entry of k.
func (k Kind) Info() (KindInfo, bool) {
	if in := info(k); in != nil {
		return *in, true
	}
	return KindInfo{}, false
}

// KindNamed returns the registry entry of the kind named name ("hll").
func KindNamed(name string) (KindInfo, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return KindInfo{}, false
}

// KindNames lists the kinds' names for a message: "hll, cms, tdigest or
// reservoir".
func KindNames() string {
	var b strings.Builder
	for i := range kinds {
		switch {
		case i == 0:
		case i == len(kinds)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(kinds[i].Name)
	}
	return b.String()
}

// Params returns the kind's numeric parameters.
func (k KindInfo) Params() []Param { return slices.Clone(k.params) }

// Param returns the kind's parameter named name.
func (k KindInfo) Param(name string) (Param, bool) {
	for _, q := range k.params {
		if q.Name == name {
			return q, true
		}
	}
	return Param{}, false
}

// Get returns the parameter's value in p.
func (q Param) Get(p Params) float64 { return q.field.get(&p) }

// Set sets the parameter in p to v, which must be in range (see Check).
func (q Param) Set(p *Params, v float64) { q.field.set(p, v) }

// MaxEncodedBytes is an upper bound of the encoded size of any sketch with
// parameters p (after Normalize), whatever its inputs: what each sketch of
// an aggregate can grow to in one pane. It is 0 for an unknown kind.
func (p Params) MaxEncodedBytes() int {
	in := info(p.Kind)
	if in == nil {
		return 0
	}
	return in.maxEncoded(p.Normalize())
}

// Add adds one event's value to s, as the kind's Input reads it: item is
// the canonical text of a scalar (InputItem, hashed with Hash) or raw JSON
// (InputJSON); num is the number (InputNumber) or the weight of a weighted
// InputJSON kind; tag orders a reservoir's sample (InputJSON).
func Add(s Sketch, item []byte, num float64, tag uint64) error {
	switch s := s.(type) {
	case *HLL:
		s.InsertHash(Hash(item))
	case *CountMin:
		s.addItem(item)
	case *TDigest:
		return s.Add(num)
	case *Reservoir:
		s.Add(tag, item, num)
	case *Theta:
		s.InsertHash(Hash(item))
	case *DDSketch:
		return s.Add(num)
	default:
		return fmt.Errorf("sketch: add to %s: %w", describe(s), ErrParams)
	}
	return nil
}
