package sketch

import (
	"encoding/binary"
	"fmt"

	"github.com/axiomhq/hyperloglog"
)

// Lazy decoding of sparse HLLs. The cold computation of a series merges
// every stored pane of its ragged ends and rollup blocks, each decoded
// once and merged once (BenchmarkFirstSeries in internal/query), and the
// library's UnmarshalBinary of a sparse pane builds its temporary hash set
// and a copy of its compressed list: about 11 of the 18 allocations per
// pane of BenchmarkFirstSeries/from_17m_past and a fifth of its time,
// thrown away by the merge, which reads the pane's keys from its encoding
// (MergeMany). So decodeHLL checks a sparse encoding here, as the library
// would (checkSparseEncoding), and keeps only the bytes; the library
// sketch is built from them when the HLL changes (lib) or is read in a
// way the bytes cannot answer (libView, libCopy: built and not kept, so
// that a decoded pane shared by concurrent queries, which only read it,
// is never written). TestHLLSparseCheckMatchesLibrary checks that the
// check accepts exactly what UnmarshalBinary accepts, on valid encodings
// and on corrupted ones (seeded), and FuzzDecode that whatever Decode
// accepts behaves.

// lib returns h's library sketch, for h to change: made from enc first
// when h is lazy, and kept.
func (h *HLL) lib() *hyperloglog.Sketch {
	if h.sk == nil {
		h.sk = h.libCopy()
	}
	return h.sk
}

// libView returns h's library sketch for reading only: h's own, or one
// made from enc that h does not keep.
func (h *HLL) libView() *hyperloglog.Sketch {
	if h.sk != nil {
		return h.sk
	}
	return h.libCopy()
}

// libCopy returns a library sketch equal to h's that the caller owns.
func (h *HLL) libCopy() *hyperloglog.Sketch {
	if h.sk != nil {
		return h.sk.Clone()
	}
	sk, err := sketchOf(h.p, h.enc)
	if err != nil {
		// Unreachable: checkSparseEncoding accepted enc, as the library
		// does (TestHLLSparseCheckMatchesLibrary). An empty sketch of h's
		// precision keeps the library calls defined.
		sk, _ = hyperloglog.NewSketch(h.p, true)
	}
	return sk
}

// checkSparseEncoding reports whether enc is a version 2 sparse encoding of
// precision p that the library's UnmarshalBinary accepts, with the same
// checks in the same order (hyperloglog v0.3.0, hyperloglog.go and
// compressed.go): the header; a temporary set of at most 2^p keys that
// fits; each key's ρ at most 64-p+1; then the compressed list: a 12-byte
// header, a stream of exactly its size, a count under 2^25 (and, when 0, a
// size and last of 0, else a size between count and 5·count), minimal
// varints of at most 5 bytes that fit in 32 bits, keys strictly
// increasing after the first delta, each with a valid ρ, as many as the
// count, the last equal to the header's.
func checkSparseEncoding(p uint8, enc []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("hll sparse encoding: "+format+": %w", append(args, ErrCorrupt)...)
	}
	if len(enc) < 8 {
		return bad("header needs 8 bytes, have %d", len(enc))
	}
	if enc[0] != 2 || enc[1] != p || enc[2] != 0 || enc[3] != 1 {
		return bad("header %x is not version 2, precision %d, sparse", enc[:4], p)
	}
	if p < 4 || p > 18 {
		return bad("precision %d", p)
	}
	m := uint32(1) << p
	maxRho := 64 - p + 1
	tmp := binary.BigEndian.Uint32(enc[4:8])
	need := 8 + 4*uint64(tmp)
	if need > uint64(len(enc)) {
		return bad("temporary set of %d keys needs %d bytes, have %d", tmp, need, len(enc))
	}
	if tmp > m {
		return bad("temporary set of %d keys exceeds %d", tmp, m)
	}
	for i := 8; i < int(need); i += 4 {
		if _, r := decodeSparseKey(binary.BigEndian.Uint32(enc[i:]), p); r > maxRho {
			return bad("temporary set key at offset %d has rho %d", i, r)
		}
	}
	list := enc[need:]
	if len(list) < 12 {
		return bad("compressed list header needs 12 bytes, have %d", len(list))
	}
	count, last, size := binary.BigEndian.Uint32(list), binary.BigEndian.Uint32(list[4:]), binary.BigEndian.Uint32(list[8:])
	stream := list[12:]
	if uint64(len(stream)) != uint64(size) {
		return bad("compressed list of %d bytes, header says %d", len(stream), size)
	}
	switch {
	case count >= 1<<sparsePrecision:
		return bad("compressed list count %d", count)
	case count == 0 && (size != 0 || last != 0):
		return bad("empty compressed list has size %d and last %d", size, last)
	case count > 0 && (size < count || uint64(size) > 5*uint64(count)):
		return bad("compressed list of %d keys in %d bytes", count, size)
	}
	var entries, running uint32
	for i := 0; i < len(stream); {
		x, next, ok := sparseVarint(stream, i)
		if !ok {
			return bad("compressed list varint at %d", i)
		}
		i = next
		k := running + x
		if entries > 0 && k <= running {
			return bad("compressed list key %d does not increase", entries)
		}
		running = k
		if _, r := decodeSparseKey(k, p); r > maxRho {
			return bad("compressed list key %d has rho %d", entries, r)
		}
		entries++
	}
	if entries != count || running != last {
		return bad("compressed list holds %d keys up to %d, header says %d up to %d", entries, running, count, last)
	}
	return nil
}

// sparseVarint decodes the varint of the compressed list at b[i:] as the
// library does (variableLengthList.decode): at most 5 bytes, the fifth
// under 0x10, no trailing zero byte.
func sparseVarint(b []byte, i int) (x uint32, next int, ok bool) {
	j := i
	for ; j < len(b) && b[j]&0x80 != 0; j++ {
		x |= uint32(b[j]&0x7f) << (uint(j-i) * 7)
	}
	if j >= len(b) {
		return x, len(b), false
	}
	x |= uint32(b[j]) << (uint(j-i) * 7)
	n := j - i + 1
	if n > 5 || (n == 5 && b[j] > 0x0f) || (n > 1 && b[j] == 0) {
		return x, len(b), false
	}
	return x, j + 1, true
}
