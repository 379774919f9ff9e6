package sketch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Envelope layout (all integers little-endian; see docs/format-sketches.md):
//
//	0   2  magic 'S' 'K'
//	2   1  envelope version (1)
//	3   1  kind
//	4   1  kind payload version (1 for every kind)
//	5   1  hash id (0 none, 1 XXH64 seed 0)
//	6   2  flags (none defined: must be 0)
//	8   8  n (Count)
//	16  .. uvarint L, L bytes of params: TLV {uvarint tag, uvarint len, bytes},
//	       tags strictly ascending, every tag of the kind present
//	..  .. uvarint P, P bytes of payload
//	..  4  CRC32-C (Castagnoli) of all preceding bytes
const (
	magic0          = 'S'
	magic1          = 'K'
	envelopeVersion = 1
	payloadVersion  = 1
	headerLen       = 16
	crcLen          = 4
	// maxBlob bounds what Decode accepts (a 10000-item reservoir of large
	// items is the biggest legitimate blob by far).
	maxBlob = 1 << 30
)

// checksum is the CRC-32C (Castagnoli) of the envelope. crc32.MakeTable returns
// the standard library's one Castagnoli table, built once per process and
// shared with every other user (the store and the sketch envelope both use
// it), so the table is not a package variable here.
func checksum(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// DecodeError describes why a blob did not decode. Err is ErrCorrupt or
// ErrVersion (possibly wrapping a library error).
type DecodeError struct {
	Kind   Kind   // 0 when the kind byte was not read or is unknown
	Offset int    // byte offset of the problem in the blob (approximate inside payloads)
	Reason string // human-readable
	Err    error
}

func (e *DecodeError) Error() string {
	k := ""
	if e.Kind != 0 {
		k = " " + e.Kind.String()
	}
	return fmt.Sprintf("sketch: decode%s at offset %d: %s: %v", k, e.Offset, e.Reason, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func corrupt(off int, format string, args ...any) *DecodeError {
	return &DecodeError{Offset: off, Reason: fmt.Sprintf(format, args...), Err: ErrCorrupt}
}

// header is the decoded fixed part of an envelope.
type header struct {
	kind   Kind
	hashID uint8
	n      uint64
}

// appendEnvelope frames params and payload written by the two callbacks.
// The callbacks append to the slice they are given and return it.
func appendEnvelope(dst []byte, kind Kind, hashID uint8, n uint64, p Params, payload func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	dst = append(dst, magic0, magic1, envelopeVersion, byte(kind), payloadVersion, hashID, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, n)
	// The params are at most a few dozen bytes: a one-byte uvarint length.
	lenAt := len(dst)
	dst = appendParams(append(dst, 0), p)
	if pl := len(dst) - lenAt - 1; pl < 0x80 {
		dst[lenAt] = byte(pl)
	} else {
		return dst[:start], fmt.Errorf("sketch: %d bytes of params", pl)
	}
	// The payload length prefix is not known in advance: reserve the
	// maximum, write the payload, then move it down if the prefix is shorter.
	lenAt = len(dst)
	dst = append(dst, make([]byte, binary.MaxVarintLen64)...)
	body := len(dst)
	out, err := payload(dst)
	if err != nil {
		return dst[:start], err
	}
	dst = out
	plen := len(dst) - body
	var pre [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(pre[:], uint64(plen))
	copy(dst[lenAt:], pre[:k])
	copy(dst[lenAt+k:], dst[body:])
	dst = dst[:lenAt+k+plen]
	crc := checksum(dst[start:])
	return binary.LittleEndian.AppendUint32(dst, crc), nil
}

// parseEnvelope checks magic, versions, flags, CRC and framing, and returns
// the header, the params and the payload (sub-slices of b).
func parseEnvelope(b []byte) (h header, params, payload []byte, payloadOff int, err error) {
	if len(b) < headerLen+2+crcLen {
		return h, nil, nil, 0, corrupt(0, "%d bytes is shorter than the smallest envelope", len(b))
	}
	if len(b) > maxBlob {
		return h, nil, nil, 0, corrupt(0, "%d bytes exceeds the %d-byte limit", len(b), maxBlob)
	}
	if b[0] != magic0 || b[1] != magic1 {
		return h, nil, nil, 0, corrupt(0, "bad magic %#x %#x", b[0], b[1])
	}
	if b[2] != envelopeVersion {
		return h, nil, nil, 0, &DecodeError{Offset: 2, Reason: fmt.Sprintf("envelope version %d", b[2]), Err: ErrVersion}
	}
	h.kind = Kind(b[3])
	in := info(h.kind)
	if in == nil {
		return h, nil, nil, 0, &DecodeError{Offset: 3, Reason: fmt.Sprintf("unknown kind %d", b[3]), Err: ErrVersion}
	}
	if b[4] != payloadVersion {
		return h, nil, nil, 0, &DecodeError{Kind: h.kind, Offset: 4, Reason: fmt.Sprintf("payload version %d", b[4]), Err: ErrVersion}
	}
	h.hashID = b[5]
	want := uint8(hashNone)
	if in.hashed {
		want = hashXXH64
	}
	if h.hashID != want {
		return h, nil, nil, 0, &DecodeError{Kind: h.kind, Offset: 5, Reason: fmt.Sprintf("hash id %d, want %d", h.hashID, want), Err: ErrVersion}
	}
	if f := binary.LittleEndian.Uint16(b[6:]); f != 0 {
		return h, nil, nil, 0, &DecodeError{Kind: h.kind, Offset: 6, Reason: fmt.Sprintf("unknown flags %#04x", f), Err: ErrVersion}
	}
	body := len(b) - crcLen
	if got, want := checksum(b[:body]), binary.LittleEndian.Uint32(b[body:]); got != want {
		return h, nil, nil, 0, &DecodeError{Kind: h.kind, Offset: body, Reason: fmt.Sprintf("crc %#08x, want %#08x", got, want), Err: ErrCorrupt}
	}
	h.n = binary.LittleEndian.Uint64(b[8:])
	r := reader{b: b[:body], off: headerLen}
	params = r.bytes("params")
	payloadOff = r.off
	payload = r.bytes("payload")
	if r.err == nil && r.off != body {
		r.fail("%d trailing bytes", body-r.off)
	}
	if r.err != nil {
		r.err.Kind = h.kind
		return h, nil, nil, 0, r.err
	}
	// Payload offsets reported by kind decoders are relative to payload.
	return h, params, payload, payloadOff + uvarintLen(uint64(len(payload))), nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Decode decodes any sketch encoded by AppendBinary. It never panics; every
// error is a *DecodeError wrapping ErrCorrupt or ErrVersion.
func Decode(b []byte) (Sketch, error) { return DecodeIn(b, nil) }

// DecodeIn is Decode taking a t-digest's centroids and values from arena
// (nil: allocated), for a sketch that is read and dropped before the
// arena's next Reset (decode_arena.go).
func DecodeIn(b []byte, arena *DecodeArena) (Sketch, error) {
	h, params, payload, off, err := parseEnvelope(b)
	if err != nil {
		return nil, err
	}
	var s Sketch
	var derr *DecodeError
	switch h.kind {
	case KindHLL:
		s, derr = decodeHLL(h, params, payload)
	case KindCMS:
		s, derr = decodeCountMin(h, params, payload)
	case KindTDigest:
		s, derr = decodeTDigest(h, params, payload, arena)
	case KindReservoir:
		s, derr = decodeReservoir(h, params, payload)
	case KindTheta:
		s, derr = decodeTheta(h, params, payload)
	case KindDDSketch:
		s, derr = decodeDDSketch(h, params, payload)
	}
	if derr != nil {
		derr.Kind = h.kind
		if derr.Offset >= 0 {
			derr.Offset += off
		} else {
			derr.Offset = headerLen
		}
		return nil, derr
	}
	return s, nil
}

// DecodeHeader returns the kind, parameters and count of a blob without
// decoding its payload (the CRC is still checked).
func DecodeHeader(b []byte) (Params, uint64, error) {
	h, params, _, _, err := parseEnvelope(b)
	if err != nil {
		return Params{}, 0, err
	}
	p, derr := parseParams(h.kind, params)
	if derr != nil {
		derr.Kind = h.kind
		derr.Offset = headerLen
		return Params{}, 0, derr
	}
	return p, h.n, nil
}

// Parameter TLV tags per kind.
const (
	tagPrecision   = 1 // HLL: u8
	tagEpsilon     = 1 // CMS: f64
	tagDelta       = 2 // CMS: f64
	tagTopK        = 3 // CMS: uvarint
	tagDepth       = 4 // CMS: u8 d (derived, checked)
	tagLog2Width   = 5 // CMS: u8 log2 w (derived, checked)
	tagCompression = 1 // TDigest: f64
	tagSize        = 1 // Reservoir: uvarint
	tagWeighted    = 2 // Reservoir: u8 0/1
	tagNominal     = 1 // Theta: uvarint k
	tagAlpha       = 1 // DDSketch: f64 relative accuracy
)

func appendTLV(dst []byte, tag uint64, v []byte) []byte {
	dst = binary.AppendUvarint(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func appendTLVf64(dst []byte, tag uint64, f float64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], math.Float64bits(f))
	return appendTLV(dst, tag, b[:])
}

func appendTLVuvarint(dst []byte, tag, v uint64) []byte {
	var b [binary.MaxVarintLen64]byte
	return appendTLV(dst, tag, b[:binary.PutUvarint(b[:], v)])
}

// appendParams appends the TLV params of a normalized p.
func appendParams(b []byte, p Params) []byte {
	switch p.Kind {
	case KindHLL:
		b = appendTLV(b, tagPrecision, []byte{p.Precision})
	case KindCMS:
		w, d := cmsDims(p.Epsilon, p.Delta)
		b = appendTLVf64(b, tagEpsilon, p.Epsilon)
		b = appendTLVf64(b, tagDelta, p.Delta)
		b = appendTLVuvarint(b, tagTopK, uint64(p.TopK))
		b = appendTLV(b, tagDepth, []byte{byte(d)})
		b = appendTLV(b, tagLog2Width, []byte{byte(log2(w))})
	case KindTDigest:
		b = appendTLVf64(b, tagCompression, p.Compression)
	case KindReservoir:
		var wt byte
		if p.Weighted {
			wt = 1
		}
		b = appendTLVuvarint(b, tagSize, uint64(p.Size))
		b = appendTLV(b, tagWeighted, []byte{wt})
	case KindTheta:
		b = appendTLVuvarint(b, tagNominal, uint64(p.NominalEntries))
	case KindDDSketch:
		b = appendTLVf64(b, tagAlpha, p.RelativeAccuracy)
	}
	return b
}

// parseParams reads the TLV params of kind k: tags strictly ascending, all
// present, none unknown, each value well-formed, and the result valid.
func parseParams(k Kind, b []byte) (Params, *DecodeError) {
	p := Params{Kind: k}
	r := reader{b: b}
	var want []uint64
	switch k {
	case KindHLL:
		want = []uint64{tagPrecision}
	case KindCMS:
		want = []uint64{tagEpsilon, tagDelta, tagTopK, tagDepth, tagLog2Width}
	case KindTDigest:
		want = []uint64{tagCompression}
	case KindReservoir:
		want = []uint64{tagSize, tagWeighted}
	case KindTheta:
		want = []uint64{tagNominal}
	case KindDDSketch:
		want = []uint64{tagAlpha}
	}
	var depth, log2w byte
	for i := 0; r.err == nil && r.off < len(b); i++ {
		tag := r.uvarint("param tag")
		v := r.bytes("param value")
		if r.err != nil {
			break
		}
		if i >= len(want) || tag != want[i] {
			return p, &DecodeError{Offset: -1, Reason: fmt.Sprintf("unexpected param tag %d at position %d", tag, i), Err: ErrVersion}
		}
		vr := reader{b: v}
		switch {
		case k == KindHLL && tag == tagPrecision:
			p.Precision = vr.u8("precision")
		case k == KindCMS && tag == tagEpsilon:
			p.Epsilon = vr.f64("epsilon")
		case k == KindCMS && tag == tagDelta:
			p.Delta = vr.f64("delta")
		case k == KindCMS && tag == tagTopK:
			p.TopK = int(min(vr.uvarint("top_k"), 1<<20))
		case k == KindCMS && tag == tagDepth:
			depth = vr.u8("depth")
		case k == KindCMS && tag == tagLog2Width:
			log2w = vr.u8("log2 width")
		case k == KindTDigest && tag == tagCompression:
			p.Compression = vr.f64("compression")
		case k == KindReservoir && tag == tagSize:
			p.Size = int(min(vr.uvarint("size"), 1<<20))
		case k == KindTheta && tag == tagNominal:
			p.NominalEntries = int(min(vr.uvarint("nominal_entries"), 1<<30))
		case k == KindDDSketch && tag == tagAlpha:
			p.RelativeAccuracy = vr.f64("relative_accuracy")
		case k == KindReservoir && tag == tagWeighted:
			switch vr.u8("weighted") {
			case 0:
			case 1:
				p.Weighted = true
			default:
				vr.fail("weighted must be 0 or 1")
			}
		}
		if vr.err == nil && vr.off != len(v) {
			vr.fail("param %d has %d extra bytes", tag, len(v)-vr.off)
		}
		if vr.err != nil {
			return p, vr.err
		}
		want[i] = math.MaxUint64 // seen
	}
	if r.err != nil {
		return p, r.err
	}
	for _, t := range want {
		if t != math.MaxUint64 {
			return p, corrupt(-1, "param tag %d missing", t)
		}
	}
	// Zero means "default" for New but must be explicit on the wire.
	if err := p.Validate(); err != nil || p.Normalize() != p {
		return p, corrupt(-1, "invalid params %+v", p)
	}
	if k == KindCMS {
		w, d := cmsDims(p.Epsilon, p.Delta)
		if int(depth) != d || int(log2w) != log2(w) {
			return p, corrupt(-1, "cms dimensions d=%d log2w=%d do not match epsilon/delta (want %d, %d)", depth, log2w, d, log2(w))
		}
	}
	return p, nil
}

// reader reads a byte slice, remembering the first error; reads after an
// error return zero values.
type reader struct {
	b   []byte
	off int
	err *DecodeError
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = corrupt(r.off, format, args...)
	}
}

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("%s: need %d bytes, have %d", what, n, len(r.b)-r.off)
		return false
	}
	return true
}

func (r *reader) u8(what string) byte {
	if !r.need(1, what) {
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) u64(what string) uint64 {
	if !r.need(8, what) {
		return 0
	}
	r.off += 8
	return binary.LittleEndian.Uint64(r.b[r.off-8:])
}

func (r *reader) f64(what string) float64 { return math.Float64frombits(r.u64(what)) }

func (r *reader) uvarint(what string) uint64 { return r.uvarintOf(what, "") }

// uvarintOf is uvarint naming the value what+suffix in its errors: the
// two are joined only on failure, since joining them on every call (as
// bytes did for each item of a sketch) allocated a string per item.
func (r *reader) uvarintOf(what, suffix string) uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.fail("%s%s: bad uvarint", what, suffix)
		return 0
	}
	if k != uvarintLen(v) {
		r.fail("%s%s: non-minimal uvarint", what, suffix)
		return 0
	}
	r.off += k
	return v
}

// count reads a uvarint element count and checks that at least minBytes
// bytes per element remain, so a hostile count cannot force a huge
// allocation.
func (r *reader) count(what string, minBytes int) int {
	v := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if v > uint64(len(r.b)-r.off)/uint64(minBytes) {
		r.fail("%s: %d elements cannot fit in %d bytes", what, v, len(r.b)-r.off)
		return 0
	}
	return int(v)
}

// varint reads a minimal zigzag varint.
func (r *reader) varint(what string) int64 {
	u := r.uvarint(what)
	return int64(u>>1) ^ -int64(u&1)
}

func (r *reader) bytes(what string) []byte {
	n := r.uvarintOf(what, " length")
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("%s: length %d exceeds the %d bytes left", what, n, len(r.b)-r.off)
		return nil
	}
	r.off += int(n)
	return r.b[r.off-int(n) : r.off : r.off]
}

func (r *reader) end(what string) {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%s: %d trailing bytes", what, len(r.b)-r.off)
	}
}
