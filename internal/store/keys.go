package store

import (
	"encoding/binary"
	"math"
	"time"
)

// This file is the only place that builds or parses Badger keys. The layout
// is documented byte by byte in docs/format.md. All integers are big-endian;
// signed times and partitions are stored sign-flipped (x XOR 1<<63) so that
// byte order equals numeric order, negatives (before 1970) first.

// Key prefixes: the first byte of every Badger key.
const (
	prefixCheckpoint byte = 'C' // 'C' sid                      -> checkpoint
	prefixFormat     byte = 'F' // 'F'                          -> store format version
	prefixIndex      byte = 'K' // 'K' sid part key            -> key index entry
	prefixNextID     byte = 'N' // 'N'                          -> last assigned stream ID
	prefixPane       byte = 'P' // 'P' sid part klen key start -> pane
	prefixStream     byte = 'S' // 'S' name                     -> stream spec
	prefixUpdateID   byte = 'U' // 'U' sid id                   -> an applied UpdatePane id
)

const (
	sidPrefixLen  = 1 + 4     // prefix, stream ID
	partPrefixLen = 1 + 4 + 8 // prefix, stream ID, partition
)

// flip maps int64 to uint64 preserving order.
func flip(v int64) uint64 { return uint64(v) ^ (1 << 63) }

// unflip inverts flip.
func unflip(u uint64) int64 { return int64(u ^ (1 << 63)) }

// partitionWidth is W = g * ceil(24h / g): the whole number of panes closest
// to (and at least) one day. With a granularity that divides 24h it is 24h.
func partitionWidth(g time.Duration) int64 {
	const day = int64(24 * time.Hour)
	gn := int64(g)
	if gn <= 0 {
		return day
	}
	n := (day + gn - 1) / gn
	if n > math.MaxInt64/gn {
		return gn
	}
	return gn * n
}

// floorDiv is a/b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// partitionOf returns the partition of a pane start.
func partitionOf(start, w int64) int64 { return floorDiv(start, w) }

// partitionStart returns p*w, saturated to the int64 range.
func partitionStart(p, w int64) int64 {
	if p > 0 && p > math.MaxInt64/w {
		return math.MaxInt64
	}
	if p < 0 && p < math.MinInt64/w {
		return math.MinInt64
	}
	return p * w
}

func appendSID(dst []byte, kind byte, sid uint32) []byte {
	dst = append(dst, kind)
	return binary.BigEndian.AppendUint32(dst, sid)
}

// sidPrefix is kind | sid: every key of one kind of one stream.
func sidPrefix(kind byte, sid uint32) []byte {
	return appendSID(make([]byte, 0, sidPrefixLen), kind, sid)
}

// partPrefix is kind | sid | part: every key of one kind in one partition.
func partPrefix(kind byte, sid uint32, part int64) []byte {
	return appendPartPrefix(make([]byte, 0, partPrefixLen), kind, sid, part)
}

func appendPartPrefix(dst []byte, kind byte, sid uint32, part int64) []byte {
	dst = appendSID(dst, kind, sid)
	return binary.BigEndian.AppendUint64(dst, flip(part))
}

// paneKeyLen is the length of a pane key for a group-by key of n bytes.
func paneKeyLen(n int) int { return partPrefixLen + 2 + n + 8 }

// appendPaneKeyPrefix appends 'P' | sid | part | klen | key: one key's panes
// in one partition.
func appendPaneKeyPrefix(dst []byte, sid uint32, part int64, key string) []byte {
	dst = appendPartPrefix(dst, prefixPane, sid, part)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	return append(dst, key...)
}

// appendPaneKey appends the full pane key.
func appendPaneKey(dst []byte, sid uint32, part int64, key string, start int64) []byte {
	dst = appendPaneKeyPrefix(dst, sid, part, key)
	return binary.BigEndian.AppendUint64(dst, flip(start))
}

// parsePaneKey splits a pane key. The returned key aliases k.
func parsePaneKey(k []byte) (sid uint32, part int64, key []byte, start int64, ok bool) {
	if len(k) < paneKeyLen(0) || k[0] != prefixPane {
		return 0, 0, nil, 0, false
	}
	sid = binary.BigEndian.Uint32(k[1:5])
	part = unflip(binary.BigEndian.Uint64(k[5:13]))
	n := int(binary.BigEndian.Uint16(k[13:15]))
	if len(k) != paneKeyLen(n) {
		return 0, 0, nil, 0, false
	}
	key = k[15 : 15+n]
	start = unflip(binary.BigEndian.Uint64(k[15+n:]))
	return sid, part, key, start, true
}

// indexKey is 'K' | sid | part | key: "key has at least one pane in part".
func indexKey(sid uint32, part int64, key string) []byte {
	dst := make([]byte, 0, partPrefixLen+len(key))
	dst = appendPartPrefix(dst, prefixIndex, sid, part)
	return append(dst, key...)
}

// parseIndexKey splits a key-index key. The returned key aliases k.
func parseIndexKey(k []byte) (part int64, key []byte, ok bool) {
	if len(k) < partPrefixLen || k[0] != prefixIndex {
		return 0, nil, false
	}
	return unflip(binary.BigEndian.Uint64(k[5:13])), k[partPrefixLen:], true
}

// keyPartition returns the partition of a 'P' or 'K' key.
func keyPartition(k []byte) (int64, bool) {
	if len(k) < partPrefixLen {
		return 0, false
	}
	return unflip(binary.BigEndian.Uint64(k[5:13])), true
}

func checkpointKey(sid uint32) []byte { return sidPrefix(prefixCheckpoint, sid) }

func updateIDKey(sid uint32, id string) []byte { return append(sidPrefix(prefixUpdateID, sid), id...) }

func streamKey(name string) []byte { return append([]byte{prefixStream}, name...) }

func nextIDKey() []byte { return []byte{prefixNextID} }

func formatKey() []byte { return []byte{prefixFormat} }
