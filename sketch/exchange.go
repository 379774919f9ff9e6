package sketch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	caio "github.com/caio/go-tdigest/v4"
)

// The t-digest exchange format: the reference "small" binary encoding of
// the t-digest (Dunning's Java implementation's SMALL_ENCODING, as
// github.com/caio/go-tdigest reads and writes it), all big-endian:
//
//	0   4  int32 encoding = 2
//	4   8  f64 compression
//	12  4  int32 N, the number of centroids
//	16  4N N × f32: each centroid's mean minus the previous one's (the first's minus 0)
//	..  ..  N × uvarint: each centroid's count
//
// caio/go-tdigest is the codec: sketchd's digest goes out through a caio
// digest of the same compression, and comes in through caio.FromBytes.
// The format keeps neither min nor max, and means are rounded to float32
// deltas: an exchange is lossy at about 1e-7 relative on each mean, and
// min and max become the first and last centroids' means.

// tdigestExchangeEncoding is the int32 that starts the format.
const tdigestExchangeEncoding = 2

// AppendTDigestExchange appends t in the t-digest exchange format.
func AppendTDigestExchange(dst []byte, t *TDigest) ([]byte, error) {
	c, err := caio.New(caio.Compression(t.compression), caio.LocalRandomNumberGenerator(1))
	if err != nil {
		return dst, fmt.Errorf("sketch: tdigest exchange: %w", err)
	}
	for _, cen := range t.view() {
		if err := c.AddWeighted(cen.mean, cen.w); err != nil {
			return dst, fmt.Errorf("sketch: tdigest exchange: %w", err)
		}
	}
	b, err := c.AsBytes()
	if err != nil {
		return dst, fmt.Errorf("sketch: tdigest exchange: %w", err)
	}
	return append(dst, b...), nil
}

// DecodeTDigestExchange decodes a digest in the t-digest exchange format
// into a new sketchd digest of the given compression (that of the
// aggregate it is meant for; 0 takes the blob's own): its centroids are
// added as weighted values. It never panics; errors wrap ErrCorrupt (or
// ErrParams for a bad compression).
func DecodeTDigestExchange(b []byte, compression float64) (*TDigest, error) {
	if len(b) < 16 {
		return nil, corrupt(0, "tdigest exchange: %d bytes is shorter than the 16-byte header", len(b))
	}
	if enc := int32(binary.BigEndian.Uint32(b)); enc != tdigestExchangeEncoding {
		return nil, corrupt(0, "tdigest exchange: encoding %d, want %d (small)", enc, tdigestExchangeEncoding)
	}
	own := math.Float64frombits(binary.BigEndian.Uint64(b[4:]))
	if !isFinite(own) || own <= 0 {
		return nil, corrupt(4, "tdigest exchange: compression %g", own)
	}
	// Each centroid takes at least 5 bytes (f32 and a one-byte uvarint):
	// check the count before the codec allocates for it.
	n := int64(int32(binary.BigEndian.Uint32(b[12:])))
	if n < 0 || n > int64(len(b)-16)/5 {
		return nil, corrupt(12, "tdigest exchange: %d centroids cannot fit in %d bytes", n, len(b)-16)
	}
	if compression == 0 {
		compression = own
	}
	t, err := NewTDigest(compression)
	if err != nil {
		return nil, err
	}
	r := bytes.NewReader(b)
	c, err := caio.FromBytes(r, caio.LocalRandomNumberGenerator(1))
	if err != nil {
		return nil, &DecodeError{Offset: 0, Reason: "tdigest exchange", Err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	if r.Len() != 0 {
		return nil, corrupt(len(b)-r.Len(), "tdigest exchange: %d trailing bytes", r.Len())
	}
	c.ForEachCentroid(func(mean float64, count uint64) bool {
		if err == nil {
			if t.n+count < t.n {
				err = ErrOverflow
			} else {
				err = t.AddWeighted(mean, count)
			}
		}
		return err == nil
	})
	if err != nil {
		return nil, &DecodeError{Offset: 16, Reason: "tdigest exchange centroid", Err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	return t, nil
}
