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
	prefixTierPane   byte = 'R' // 'R' sid tier part klen key start -> rollup tier pane
	prefixTierIndex  byte = 'Q' // 'Q' sid tier part key       -> rollup tier key index entry
	prefixTierCursor byte = 'U' // 'U' sid tier                 -> rollup tier cursor
	prefixImportID   byte = 'M' // 'M' sid id                   -> an applied UpdatePane (import) id
	prefixAlters     byte = 'A' // 'A' sid                      -> the stream's alter log
	prefixInstance   byte = 'I' // 'I'                          -> this instance's id
	prefixEmitCursor byte = 'E' // 'E' sid subject              -> an emit target's cursor
	prefixChangelog  byte = 'L' // 'L' sid                      -> changelog sequence of the last applied checkpoint record
	prefixBackfill   byte = 'B' // 'B' sid                      -> the stream's backfill progress
	prefixRestoring  byte = 'T' // 'T' sid                      -> present while a changelog restore of the stream is incomplete
	prefixPartWidth  byte = 'W' // 'W' sid                      -> the base panes' partition width (absent: a day, partitionWidth)
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

// paneKeyLen is the length of a base pane key for a group-by key of n
// bytes.
func paneKeyLen(n int) int { return partPrefixLen + 2 + n + 8 }

// space is one family of a stream's panes with its key index: the stream's
// own (base) panes, or one rollup tier's. Both lay out their keys the same
// way after a head that names the family:
//
//	base  'P' | sid            and 'K' | sid
//	tier  'R' | sid | tier u32 and 'Q' | sid | tier u32   (tier = its granularity in seconds)
type space struct {
	pane  []byte // head of its pane keys
	index []byte // head of its key-index keys
	width int64  // partition width, ns
}

// baseSpace is the stream's own panes, in partitions of width ns.
func baseSpace(sid uint32, width int64) space {
	return space{pane: sidPrefix(prefixPane, sid), index: sidPrefix(prefixIndex, sid), width: width}
}

// spanWidth is the partition width of a new stream's base panes: span
// rounded up to whole panes of g (a day's width, partitionWidth, when
// span is a day). Streams created before widths were stored keep a day.
func spanWidth(g, span time.Duration) int64 {
	gn, sn := int64(g), int64(span)
	if gn <= 0 || sn <= 0 {
		return partitionWidth(g)
	}
	n := (sn + gn - 1) / gn
	if n > math.MaxInt64/gn {
		return gn
	}
	return gn * n
}

// partWidthKey is 'W' | sid: the stream's base partition width.
func partWidthKey(sid uint32) []byte { return sidPrefix(prefixPartWidth, sid) }

// tierSpace is the panes of the stream's rollup tier of granularity g.
func tierSpace(sid uint32, g time.Duration) space {
	id := uint32(g / time.Second)
	return space{
		pane:  binary.BigEndian.AppendUint32(sidPrefix(prefixTierPane, sid), id),
		index: binary.BigEndian.AppendUint32(sidPrefix(prefixTierIndex, sid), id),
		width: tierPartitionWidth(g),
	}
}

// tierPartitionWidth is a tier's partition width: at least a day and at
// least 24 of its panes, so a 1d tier keeps 24 days per partition.
func tierPartitionWidth(g time.Duration) int64 {
	w := partitionWidth(g)
	if n := 24 * int64(g); n > w && n/24 == int64(g) {
		return n
	}
	return w
}

// paneKeyLen is the length of a pane key of sp for a group-by key of n
// bytes.
func (sp space) paneKeyLen(n int) int { return len(sp.pane) + 8 + 2 + n + 8 }

// headPart is head | part: every key of one partition of a space (head:
// its pane or key-index head).
func headPart(head []byte, part int64) []byte {
	dst := make([]byte, 0, len(head)+8)
	dst = append(dst, head...)
	return binary.BigEndian.AppendUint64(dst, flip(part))
}

// appendPaneKeyPrefix appends head | part | klen | key: one key's panes in
// one partition.
func (sp space) appendPaneKeyPrefix(dst []byte, part int64, key string) []byte {
	dst = append(dst, sp.pane...)
	dst = binary.BigEndian.AppendUint64(dst, flip(part))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	return append(dst, key...)
}

// appendPaneKey appends the full pane key.
func (sp space) appendPaneKey(dst []byte, part int64, key string, start int64) []byte {
	dst = sp.appendPaneKeyPrefix(dst, part, key)
	return binary.BigEndian.AppendUint64(dst, flip(start))
}

// parsePaneKey splits a pane key of sp. The returned key aliases k.
func (sp space) parsePaneKey(k []byte) (part int64, key []byte, start int64, ok bool) {
	h := len(sp.pane)
	if len(k) < sp.paneKeyLen(0) || k[0] != sp.pane[0] {
		return 0, nil, 0, false
	}
	part = unflip(binary.BigEndian.Uint64(k[h : h+8]))
	n := int(binary.BigEndian.Uint16(k[h+8 : h+10]))
	if len(k) != sp.paneKeyLen(n) {
		return 0, nil, 0, false
	}
	key = k[h+10 : h+10+n]
	start = unflip(binary.BigEndian.Uint64(k[h+10+n:]))
	return part, key, start, true
}

// indexKey is index head | part | key: "key has at least one pane in
// part".
func (sp space) indexKey(part int64, key string) []byte {
	dst := make([]byte, 0, len(sp.index)+8+len(key))
	dst = append(dst, sp.index...)
	dst = binary.BigEndian.AppendUint64(dst, flip(part))
	return append(dst, key...)
}

// parseIndexKey splits a key-index key of sp. The returned key aliases k.
func (sp space) parseIndexKey(k []byte) (part int64, key []byte, ok bool) {
	h := len(sp.index)
	if len(k) < h+8 || k[0] != sp.index[0] {
		return 0, nil, false
	}
	return unflip(binary.BigEndian.Uint64(k[h : h+8])), k[h+8:], true
}

// keyPartition returns the partition of a pane or key-index key whose head
// is h bytes long.
func keyPartition(k []byte, h int) (int64, bool) {
	if len(k) < h+8 {
		return 0, false
	}
	return unflip(binary.BigEndian.Uint64(k[h : h+8])), true
}

// appendPaneKey appends the full key of a base pane.
func appendPaneKey(dst []byte, sid uint32, part int64, key string, start int64) []byte {
	return baseSpace(sid, 0).appendPaneKey(dst, part, key, start)
}

// indexKey is the key-index key of a base pane partition.
func indexKey(sid uint32, part int64, key string) []byte {
	return baseSpace(sid, 0).indexKey(part, key)
}

// tierCursorKey is 'U' | sid | tier u32: how far the tier is built.
func tierCursorKey(sid uint32, g time.Duration) []byte {
	return binary.BigEndian.AppendUint32(sidPrefix(prefixTierCursor, sid), uint32(g/time.Second))
}

// emitCursorKey is 'E' | sid | subject: how far the emit target
// publishing to subject has published.
func emitCursorKey(sid uint32, subject string) []byte {
	return append(sidPrefix(prefixEmitCursor, sid), subject...)
}

func checkpointKey(sid uint32) []byte { return sidPrefix(prefixCheckpoint, sid) }

func changelogKey(sid uint32) []byte { return sidPrefix(prefixChangelog, sid) }

func restoringKey(sid uint32) []byte { return sidPrefix(prefixRestoring, sid) }

func updateIDKey(sid uint32, id string) []byte { return append(sidPrefix(prefixImportID, sid), id...) }

func streamKey(name string) []byte { return append([]byte{prefixStream}, name...) }

func nextIDKey() []byte { return []byte{prefixNextID} }

func formatKey() []byte { return []byte{prefixFormat} }
