package sketchd

import (
	"encoding/binary"
	"errors"
)

// ErrBadKey reports an encoded key that does not parse.
var ErrBadKey = errors.New("sketchd: malformed encoded key")

// A key is the tuple of a stream's group-by dimension values, in the order the
// spec lists them. It is encoded as a string of length-prefixed values
// (uvarint length, then the bytes), so any byte may appear in a value, the
// encoding is prefix-free, and equal tuples give equal strings. The empty
// tuple (a stream without group_by) encodes as "".

// MaxKeyLen bounds the length of an encoded key. The store keeps a pane's
// key with a 16-bit length (and Badger caps whole keys at 65000 bytes), so
// the decoder rejects an event whose key is longer as oversize rather than
// accept an event no commit could write.
const MaxKeyLen = 32 << 10

// AppendKeyValue appends one encoded dimension value to dst.
func AppendKeyValue(dst []byte, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// EncodeKey encodes a tuple of dimension values.
func EncodeKey(vals ...string) string {
	n := 0
	for _, v := range vals {
		n += len(v) + binary.MaxVarintLen16
	}
	b := make([]byte, 0, n)
	for _, v := range vals {
		b = AppendKeyValue(b, []byte(v))
	}
	return string(b)
}

// DecodeKey splits an encoded key into its dimension values.
func DecodeKey(k string) ([]string, error) {
	var out []string
	for len(k) > 0 {
		n, w := binary.Uvarint([]byte(k[:min(len(k), binary.MaxVarintLen64)]))
		if w <= 0 || n > uint64(len(k)-w) {
			return nil, ErrBadKey
		}
		out = append(out, k[w:w+int(n)])
		k = k[w+int(n):]
	}
	return out, nil
}
