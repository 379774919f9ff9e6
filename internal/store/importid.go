package store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sketchd/sketchd"
)

// An import id names one source pane's import into one pane (key, start)
// of a stream: the source pane's aggregates are imported one UpdatePane
// each, all under the same id. Its record, 'M' sid id (keys.go), is
// written in the transaction of the pane each of them changes and says
// what the id imported: the pane, and per aggregate its count and the
// digest of the bytes imported. That tells a retry (the same aggregate
// and bytes into the same pane: nothing changes) from a different import
// reusing the id (a conflict), and lets the aggregates of one source pane
// count its events once: the pane's events grow by how much an import's
// count exceeds the largest count imported under the id before (max, not
// sum: an aggregate whose field some events lack saw fewer of them).
//
// The record's value (docs/format.md, "Import id value"):
//
//	version 1: u32 frame, the id's length. Written before the record said
//	           what was imported: the id applied, and any later import
//	           under it is a retry.
//	version 2: version u8 | start i64 | klen u16 | key | n u16 |
//	           n × (nlen u8 | name | count u64 | digest [32]) | crc u32

const (
	importIDVersionLegacy = 1 // the id's length only (updateIDVersion's frame)
	importIDVersion       = 2 // the pane and the aggregates imported

	// DigestLen is the length of an Import's Digest.
	DigestLen = sha256.Size

	importedLen = 1 + 8 + DigestLen // a name's length, count, digest (plus the name)
)

// Import is one aggregate's sketch that UpdatePane merges into a pane
// under an import id.
type Import struct {
	// ID names the import of one source pane into one pane: 1 to
	// MaxUpdateIDLen bytes.
	ID string
	// Aggregate names the aggregate imported: 1 to 255 bytes.
	Aggregate string
	// Count is the number of events the imported sketch stands for (its
	// count).
	Count uint64
	// Digest identifies the bytes imported (the API's: the SHA-256 of the
	// format and the body): the same aggregate imported again under the
	// id with another digest is another import, not a retry.
	Digest [DigestLen]byte
}

// ImportResult is what an UpdatePane did.
type ImportResult struct {
	// Applied is false for a retry (or any import under an id an older
	// version recorded): nothing changed.
	Applied bool
	// EventsAdded is how much the pane's events grew.
	EventsAdded uint64
}

// importRecord is an import id's decoded value.
type importRecord struct {
	// legacy is a version-1 record: the id applied, nothing else is known.
	legacy bool
	key    string
	start  int64
	aggs   []importedAggregate
}

// importedAggregate is one aggregate imported under an id.
type importedAggregate struct {
	name   string
	count  uint64
	digest [DigestLen]byte
}

// admit decides what imp, into the pane (key, start), does under the id's
// record rec (nil: the id is new): a retry (nothing changes), a conflict
// (an *ImportConflictError: the id imported another pane, or this
// aggregate with other bytes), or a merge that adds added to the pane's
// events.
func (rec *importRecord) admit(key string, start int64, imp *Import) (added uint64, retry bool, err error) {
	if rec == nil {
		return imp.Count, false, nil
	}
	if rec.legacy {
		return 0, true, nil
	}
	if rec.key != key || rec.start != start {
		return 0, false, &ImportConflictError{ID: imp.ID, Key: rec.key, Start: rec.start}
	}
	var most uint64
	for _, a := range rec.aggs {
		if a.name == imp.Aggregate {
			if a.digest != imp.Digest {
				return 0, false, &ImportConflictError{ID: imp.ID, Aggregate: imp.Aggregate, Key: key, Start: start}
			}
			return 0, true, nil
		}
		most = max(most, a.count)
	}
	if imp.Count > most {
		added = imp.Count - most
	}
	return added, false, nil
}

// with returns the record after imp into (key, start) merged: rec (nil: a
// new id) with imp's aggregate appended.
func (rec *importRecord) with(key string, start int64, imp *Import) *importRecord {
	out := &importRecord{key: key, start: start}
	if rec != nil {
		out.aggs = append(out.aggs, rec.aggs...)
	}
	out.aggs = append(out.aggs, importedAggregate{name: imp.Aggregate, count: imp.Count, digest: imp.Digest})
	return out
}

// checkImport checks an Import's lengths.
func checkImport(imp *Import) error {
	if imp.ID == "" || len(imp.ID) > MaxUpdateIDLen {
		return fmt.Errorf("%w: update id of %d bytes (1 to %d)", ErrInvalid, len(imp.ID), MaxUpdateIDLen)
	}
	if imp.Aggregate == "" || len(imp.Aggregate) > math.MaxUint8 {
		return fmt.Errorf("%w: aggregate name of %d bytes (1 to %d)", ErrInvalid, len(imp.Aggregate), math.MaxUint8)
	}
	return nil
}

// importRecordLen is the encoded length of a version-2 record.
func importRecordLen(rec *importRecord) int {
	n := 1 + 8 + 2 + len(rec.key) + 2 + crcLen
	for _, a := range rec.aggs {
		n += importedLen + len(a.name)
	}
	return n
}

// encodeImportRecord encodes rec as a version-2 value. The caller keeps
// the key within sketchd.MaxKeyLen, names within 255 bytes and the
// aggregates within 65535.
func encodeImportRecord(rec *importRecord) []byte {
	b := make([]byte, 0, importRecordLen(rec))
	b = append(b, importIDVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.start))
	b = binary.BigEndian.AppendUint16(b, uint16(len(rec.key)))
	b = append(b, rec.key...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rec.aggs)))
	for _, a := range rec.aggs {
		b = append(b, byte(len(a.name)))
		b = append(b, a.name...)
		b = binary.BigEndian.AppendUint64(b, a.count)
		b = append(b, a.digest[:]...)
	}
	return appendCRC(b)
}

// decodeImportRecord decodes an import id's value, of either version. It
// never panics: anything else is a *CorruptError naming key.
func decodeImportRecord(key, v []byte) (*importRecord, error) {
	if len(v) >= 1 && v[0] == importIDVersionLegacy {
		if _, err := decodeU32(key, v, importIDVersionLegacy); err != nil {
			return nil, err
		}
		return &importRecord{legacy: true}, nil
	}
	body, err := unframe(key, v, importIDVersion)
	if err != nil {
		return nil, err
	}
	bad := func(what string) (*importRecord, error) {
		return nil, corrupt(key, "import id value: "+what)
	}
	if len(body) < 8+2 {
		return bad(fmt.Sprintf("body of %d bytes", len(body)))
	}
	rec := &importRecord{start: int64(binary.BigEndian.Uint64(body))}
	klen := int(binary.BigEndian.Uint16(body[8:]))
	body = body[10:]
	if klen > sketchd.MaxKeyLen || len(body) < klen+2 {
		return bad(fmt.Sprintf("key of %d bytes, %d left", klen, len(body)))
	}
	rec.key = string(body[:klen])
	n := int(binary.BigEndian.Uint16(body[klen:]))
	body = body[klen+2:]
	if n == 0 {
		return bad("no aggregates")
	}
	rec.aggs = make([]importedAggregate, 0, min(n, len(body)/(importedLen+1)))
	for i := range n {
		if len(body) < 1 {
			return bad(fmt.Sprintf("aggregate %d of %d missing", i, n))
		}
		nlen := int(body[0])
		if nlen == 0 || len(body) < 1+nlen+8+DigestLen {
			return bad(fmt.Sprintf("aggregate %d: name of %d bytes, %d left", i, nlen, len(body)))
		}
		a := importedAggregate{name: string(body[1 : 1+nlen]), count: binary.BigEndian.Uint64(body[1+nlen:])}
		copy(a.digest[:], body[1+nlen+8:])
		rec.aggs = append(rec.aggs, a)
		body = body[1+nlen+8+DigestLen:]
	}
	if len(body) != 0 {
		return bad(fmt.Sprintf("%d bytes after the aggregates", len(body)))
	}
	return rec, nil
}
