package cluster

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/sketchd/sketchd"
)

// The changelog's two record kinds, framed alike: a version byte, the
// body, and a CRC-32C of both (big-endian). docs/format.md, "Changelog
// records", gives the layout byte by byte.
const (
	paneRecordVersion       byte = 1
	checkpointRecordVersion byte = 1
	crcLen                       = 4
	flagFinal               byte = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptRecord is returned for a changelog message that does not
// decode: bad frame, checksum or field.
var ErrCorruptRecord = errors.New("cluster: corrupt changelog record")

// Record is a checkpoint record: the last message of every changelog
// batch of a partition, and the fence of the next one.
type Record struct {
	Checkpoint sketchd.Checkpoint `json:"checkpoint"`
	// Owner is the instance that wrote it, Epoch the claim it wrote under
	// (each claim adds one).
	Owner string `json:"owner"`
	Epoch uint64 `json:"epoch"`
	// Gen is the aggregator's flush generation the record closes, Last
	// whether it closes that flush's last batch (an intermediate batch
	// repeats the previous checkpoint, with Last false).
	Gen  uint64 `json:"gen"`
	Last bool   `json:"last"`
	// CommittedAt is the owner's clock at the commit (unix ns).
	CommittedAt int64 `json:"committed_at"`
}

func frame(version byte, body []byte) []byte {
	out := make([]byte, 0, 1+len(body)+crcLen)
	out = append(out, version)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func unframe(b []byte, version byte) ([]byte, error) {
	if len(b) < 1+crcLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptRecord, len(b))
	}
	n := len(b) - crcLen
	if crc32.Checksum(b[:n], castagnoli) != binary.BigEndian.Uint32(b[n:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptRecord)
	}
	if b[0] != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorruptRecord, b[0], version)
	}
	return b[1:n], nil
}

// encodeRecord frames a checkpoint record (JSON body).
func encodeRecord(r *Record) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return frame(checkpointRecordVersion, body), nil
}

func decodeRecord(b []byte) (Record, error) {
	var r Record
	body, err := unframe(b, checkpointRecordVersion)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("%w: checkpoint: %w", ErrCorruptRecord, err)
	}
	return r, nil
}

// encodePane frames a pane: uvarint key length, key, start (8 bytes),
// flags, uvarint events, uvarint applied, uvarint sketch count, and per
// sketch a uvarint length and its bytes.
func encodePane(p *sketchd.PaneRecord) []byte {
	n := 3*binary.MaxVarintLen64 + len(p.Key) + 8 + 1 + 2*binary.MaxVarintLen64
	for _, s := range p.Sketches {
		n += binary.MaxVarintLen64 + len(s)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(p.Key)))
	b = append(b, p.Key...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Start))
	var flags byte
	if p.Final {
		flags |= flagFinal
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, p.Events)
	b = binary.AppendUvarint(b, p.Applied)
	b = binary.AppendUvarint(b, uint64(len(p.Sketches)))
	for _, s := range p.Sketches {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return frame(paneRecordVersion, b)
}

// decodePane decodes a pane message; the sketches alias b.
func decodePane(b []byte) (sketchd.PaneRecord, error) {
	var p sketchd.PaneRecord
	body, err := unframe(b, paneRecordVersion)
	if err != nil {
		return p, err
	}
	r := reader{b: body}
	key := r.bytes()
	p.Key = string(key)
	p.Start = int64(r.u64())
	flags := r.byte()
	p.Final = flags&flagFinal != 0
	p.Events = r.uvarint()
	p.Applied = r.uvarint()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(body)) {
		r.err = errors.New("sketch count")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		p.Sketches = append(p.Sketches, r.bytes())
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return sketchd.PaneRecord{}, fmt.Errorf("%w: pane: %w", ErrCorruptRecord, r.err)
	}
	return p, nil
}

// reader reads a pane body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("field of %d bytes, %d left", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) bytes() []byte { return r.take(r.uvarint()) }

func (r *reader) byte() byte {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// keyHash is the subject token of a pane's key: 128 bits of SHA-256 of
// the encoded key, base32 without padding. The key itself is in the body,
// and the mirror checks that it hashes to the subject's token.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16])
}

// DecodeRecord decodes a checkpoint record as read from the changelog
// (tests and tools that watch ownership read it).
func DecodeRecord(b []byte) (Record, error) { return decodeRecord(b) }
