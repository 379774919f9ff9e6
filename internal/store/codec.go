package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/sketchd/sketchd"
)

// Every stored value is framed the same way (docs/format.md):
//
//	version u8 | body | crc32c u32 (Castagnoli, over version and body)
//
// Decoders never panic: any mismatch is a *CorruptError.

const (
	crcLen      = 4
	paneVersion = 1 // pane value format
	jsonVersion = 1 // checkpoint and stream spec values
	idxVersion  = 1 // key-index value
	idVersion   = 1 // next-ID value
	fmtVersion  = 1 // format marker value

	widthVersion = 1 // a stream's partition width value
	// Import id values: importIDVersion and importIDVersionLegacy
	// (importid.go).

	// formatVersion is the on-disk layout version recorded under 'F' in
	// every family (families.go). 1: one Badger; 2: panes and meta; 3:
	// panes, open and meta.
	formatVersion = 3

	flagFinal = 1 << 0

	paneHeaderLen = 1 + 1 + 8 + 8 + 4 // version, flags, events, applied, count
)

// checksum is the CRC-32C (Castagnoli) of a stored value. crc32.MakeTable returns
// the standard library's one Castagnoli table, built once per process and
// shared with every other user (the store and the sketch envelope both use
// it), so the table is not a package variable here.
func checksum(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func appendCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, checksum(b))
}

// unframe checks the CRC trailer and the version byte and returns the body.
func unframe(key, v []byte, version byte) ([]byte, error) {
	if len(v) < 1+crcLen {
		return nil, corrupt(key, fmt.Sprintf("value too short (%d bytes)", len(v)))
	}
	n := len(v) - crcLen
	if got, want := checksum(v[:n]), binary.BigEndian.Uint32(v[n:]); got != want {
		return nil, corrupt(key, fmt.Sprintf("checksum mismatch: computed %08x, stored %08x", got, want))
	}
	if v[0] != version {
		return nil, corrupt(key, fmt.Sprintf("unknown value version %d (want %d)", v[0], version))
	}
	return v[1:n], nil
}

// paneValueLen is the encoded length of p's value.
func paneValueLen(p *sketchd.PaneRecord) int {
	n := paneHeaderLen + crcLen
	for _, s := range p.Sketches {
		n += 4 + len(s)
	}
	return n
}

// paneEquals reports whether v, a pane value as stored, holds p: the
// same flags, counts and sketch bytes. Its checksum is not checked: bytes
// equal to a record decoded from a checked value are what that value held.
func paneEquals(v []byte, p *sketchd.PaneRecord) bool {
	if len(v) != paneValueLen(p) || v[0] != paneVersion {
		return false
	}
	body := v[1 : len(v)-crcLen]
	var flags byte
	if p.Final {
		flags = flagFinal
	}
	if body[0] != flags || binary.BigEndian.Uint64(body[1:9]) != p.Events || binary.BigEndian.Uint64(body[9:17]) != p.Applied ||
		binary.BigEndian.Uint32(body[17:21]) != uint32(len(p.Sketches)) {
		return false
	}
	rest := body[21:] // as long as p's blobs with their lengths (paneValueLen)
	for _, b := range p.Sketches {
		if n := binary.BigEndian.Uint32(rest); int(n) != len(b) || !bytes.Equal(rest[4:4+n], b) {
			return false
		}
		rest = rest[4+len(b):]
	}
	return true
}

// appendPaneValue appends the pane value:
// version | flags | events u64 | applied u64 | count u32 | (len u32 | blob)* | crc.
func appendPaneValue(dst []byte, p *sketchd.PaneRecord) []byte {
	off := len(dst)
	var flags byte
	if p.Final {
		flags |= flagFinal
	}
	dst = append(dst, paneVersion, flags)
	dst = binary.BigEndian.AppendUint64(dst, p.Events)
	dst = binary.BigEndian.AppendUint64(dst, p.Applied)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.Sketches)))
	for _, s := range p.Sketches {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	return binary.BigEndian.AppendUint32(dst, checksum(dst[off:]))
}

// decodePaneValue decodes a pane value into p (Key and Start are set by the
// caller from the Badger key). The blobs are copied: p does not alias v.
func decodePaneValue(key, v []byte, p *sketchd.PaneRecord) error {
	return decodePane(key, v, allSlots, p)
}

// allSlots is decodePane's slot for "copy every sketch".
const allSlots = -1

// decodePane is decodePaneValue copying every sketch (slot allSlots) or
// only the one of slot >= 0: then p.Sketches is cut after slot and its
// other entries are nil. The whole value is checked (CRC, lengths)
// whatever the slot, so a corrupt pane is refused the same way.
func decodePane(key, v []byte, slot int, p *sketchd.PaneRecord) error {
	return decodePaneInto(key, v, slot, p, nil, false)
}

// decodePaneOwned is decodePane of every sketch without copying: v
// becomes p's (the caller made it for p and keeps no other use of it),
// and p.Sketches are sub-slices of it.
func decodePaneOwned(key, v []byte, p *sketchd.PaneRecord) error {
	return decodePaneInto(key, v, allSlots, p, nil, true)
}

// decodePaneBorrowed is decodePane for slot >= 0 without copying its
// blob: p.Sketches[slot] is a sub-slice of v, and p.Sketches is *scratch
// (grown as needed), both valid only as long as v and the next call.
func decodePaneBorrowed(key, v []byte, slot int, p *sketchd.PaneRecord, scratch *[][]byte) error {
	return decodePaneInto(key, v, slot, p, scratch, false)
}

// decodePaneInto is decodePane, borrowing (no copies, p.Sketches from
// *scratch) when scratch is not nil, aliasing v (no copies, p.Sketches
// its own) when owned.
func decodePaneInto(key, v []byte, slot int, p *sketchd.PaneRecord, scratch *[][]byte, owned bool) error {
	body, err := unframe(key, v, paneVersion)
	if err != nil {
		return err
	}
	if len(body) < paneHeaderLen-1 {
		return corrupt(key, "pane header truncated")
	}
	flags := body[0]
	if flags&^flagFinal != 0 {
		return corrupt(key, fmt.Sprintf("unknown pane flags %#x", flags))
	}
	p.Final = flags&flagFinal != 0
	p.Events = binary.BigEndian.Uint64(body[1:9])
	p.Applied = binary.BigEndian.Uint64(body[9:17])
	count := binary.BigEndian.Uint32(body[17:21])
	rest := body[21:]
	if uint64(count)*4 > uint64(len(rest)) {
		return corrupt(key, fmt.Sprintf("sketch count %d exceeds value length", count))
	}
	// First pass: validate lengths and size one buffer for all blobs.
	total, r := 0, rest
	for i := uint32(0); i < count; i++ {
		if len(r) < 4 {
			return corrupt(key, fmt.Sprintf("sketch %d: length truncated", i))
		}
		n := binary.BigEndian.Uint32(r)
		if uint64(n) > uint64(len(r)-4) {
			return corrupt(key, fmt.Sprintf("sketch %d: length %d exceeds value", i, n))
		}
		if slot == allSlots || int(i) == slot {
			total += int(n)
		}
		r = r[4+n:]
	}
	if len(r) != 0 {
		return corrupt(key, fmt.Sprintf("%d trailing bytes after sketches", len(r)))
	}
	if slot != allSlots {
		count = uint32(min(int(count), slot+1))
	}
	if scratch != nil && slot != allSlots {
		if cap(*scratch) < int(count) {
			*scratch = make([][]byte, count)
		}
		p.Sketches = (*scratch)[:count]
		clear(p.Sketches)
		for i := range p.Sketches {
			n := int(binary.BigEndian.Uint32(rest))
			if i == slot {
				p.Sketches[i] = rest[4 : 4+n : 4+n]
			}
			rest = rest[4+n:]
		}
		return nil
	}
	if owned {
		p.Sketches = make([][]byte, count)
		for i := range p.Sketches {
			n := int(binary.BigEndian.Uint32(rest))
			if slot == allSlots || i == slot {
				p.Sketches[i] = rest[4 : 4+n : 4+n]
			}
			rest = rest[4+n:]
		}
		return nil
	}
	buf := make([]byte, total)
	p.Sketches = make([][]byte, count)
	off := 0
	for i := range p.Sketches {
		n := int(binary.BigEndian.Uint32(rest))
		if slot == allSlots || i == slot {
			copy(buf[off:], rest[4:4+n])
			p.Sketches[i] = buf[off : off+n : off+n]
			off += n
		}
		rest = rest[4+n:]
	}
	return nil
}

// appendJSONValue frames a JSON body: version | json | crc.
func appendJSONValue(dst []byte, prefix []byte, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dst = append(dst, jsonVersion)
	dst = append(dst, prefix...)
	dst = append(dst, body...)
	return appendCRC(dst), nil
}

func encodeCheckpoint(cp *sketchd.Checkpoint) ([]byte, error) {
	return appendJSONValue(nil, nil, cp)
}

func decodeCheckpoint(key, v []byte) (sketchd.Checkpoint, error) {
	var cp sketchd.Checkpoint
	body, err := unframe(key, v, jsonVersion)
	if err != nil {
		return cp, err
	}
	if err := json.Unmarshal(body, &cp); err != nil {
		return sketchd.Checkpoint{}, corrupt(key, "checkpoint JSON: "+err.Error())
	}
	return cp, nil
}

// encodeStream is version | id u32 | created i64 (unix ns) | spec JSON | crc.
func encodeStream(info *StreamInfo) ([]byte, error) {
	var hdr [12]byte
	binary.BigEndian.PutUint32(hdr[0:4], info.ID)
	binary.BigEndian.PutUint64(hdr[4:12], uint64(info.Created.UnixNano()))
	return appendJSONValue(nil, hdr[:], &info.Spec)
}

func decodeStream(key, v []byte) (StreamInfo, error) {
	body, err := unframe(key, v, jsonVersion)
	if err != nil {
		return StreamInfo{}, err
	}
	if len(body) < 12 {
		return StreamInfo{}, corrupt(key, "stream header truncated")
	}
	info := StreamInfo{
		ID:      binary.BigEndian.Uint32(body[0:4]),
		Created: time.Unix(0, int64(binary.BigEndian.Uint64(body[4:12]))).UTC(),
	}
	if err := json.Unmarshal(body[12:], &info.Spec); err != nil {
		return StreamInfo{}, corrupt(key, "stream spec JSON: "+err.Error())
	}
	info.Partitions = partitionIDs(info.ID, info.Spec.Partitions)
	return info, nil
}

// indexValue is version | min start i64 | max start i64 | crc: the range of
// the pane starts the key has in the partition.
func encodeIndex(lo, hi int64) []byte {
	b := make([]byte, 0, 1+16+crcLen)
	b = append(b, idxVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(lo))
	b = binary.BigEndian.AppendUint64(b, uint64(hi))
	return appendCRC(b)
}

func decodeIndex(key, v []byte) (lo, hi int64, err error) {
	body, err := unframe(key, v, idxVersion)
	if err != nil {
		return 0, 0, err
	}
	if len(body) != 16 {
		return 0, 0, corrupt(key, fmt.Sprintf("index value body is %d bytes, want 16", len(body)))
	}
	lo, hi = int64(binary.BigEndian.Uint64(body[:8])), int64(binary.BigEndian.Uint64(body[8:]))
	if lo > hi {
		return 0, 0, corrupt(key, "index range min > max")
	}
	return lo, hi, nil
}

// encodeU32 frames one u32 (the next-ID counter and the format marker).
func encodeU32(version byte, x uint32) []byte {
	b := []byte{version}
	b = binary.BigEndian.AppendUint32(b, x)
	return appendCRC(b)
}

// encodeWidth is a partition width in nanoseconds.
func encodeWidth(w int64) []byte {
	b := []byte{widthVersion}
	b = binary.BigEndian.AppendUint64(b, uint64(w))
	return appendCRC(b)
}

func decodeWidth(key, v []byte) (int64, error) {
	body, err := unframe(key, v, widthVersion)
	if err != nil {
		return 0, err
	}
	if len(body) != 8 {
		return 0, corrupt(key, fmt.Sprintf("width value body is %d bytes", len(body)))
	}
	w := int64(binary.BigEndian.Uint64(body))
	if w <= 0 {
		return 0, corrupt(key, fmt.Sprintf("partition width %d", w))
	}
	return w, nil
}

func decodeU32(key, v []byte, version byte) (uint32, error) {
	body, err := unframe(key, v, version)
	if err != nil {
		return 0, err
	}
	if len(body) != 4 {
		return 0, corrupt(key, fmt.Sprintf("u32 value body is %d bytes", len(body)))
	}
	return binary.BigEndian.Uint32(body), nil
}
