package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// EmitCursor is how far an emit target (sketchd.Emit) has published: the
// windows ending at or before ClosedTo were published at their close, those
// ending at or before FinalTo as final (unix ns; sketchd.NoTime: none yet).
// LateSeen, when LateKnown, is the stream's committed count of late events
// the closed windows were last published or checked at: a close target
// that starts again with the count unchanged has nothing to update (before
// it was stored, every start published every closed window again, stored
// twice once older than the target stream's duplicate window).
type EmitCursor struct {
	ClosedTo, FinalTo int64
	LateSeen          uint64
	LateKnown         bool
}

// The cursor's value: version 2 adds LateKnown and LateSeen to version 1's
// two ends (docs/format.md); version 1 reads as LateKnown false.
const (
	emitCursorV1      = 1
	emitCursorVersion = 2
)

// EmitCursor returns the cursor of the stream's emit target publishing to
// subject; ok is false when it never published.
func (db *DB) EmitCursor(ctx context.Context, streamID uint32, subject string) (c EmitCursor, ok bool, err error) {
	if err := db.enter(); err != nil {
		return c, false, err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return c, false, err
	}
	if _, ok := db.streamByID(streamID); !ok {
		return c, false, fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	k := emitCursorKey(streamID, subject)
	err = db.meta.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			c, err = decodeEmitCursor(k, v)
			ok = err == nil
			return err
		})
	})
	if err != nil {
		return EmitCursor{}, false, db.readFailed("emit cursor", err)
	}
	return c, ok, nil
}

// SetEmitCursor stores the cursor of the stream's emit target publishing to
// subject, durably (synced) before it returns.
func (db *DB) SetEmitCursor(ctx context.Context, streamID uint32, subject string, c EmitCursor) error {
	if err := db.enterWrite(); err != nil {
		return err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	db.dropMu.RLock()
	defer db.dropMu.RUnlock()
	if _, ok := db.streamByID(streamID); !ok {
		return fmt.Errorf("stream %d: %w", streamID, ErrNotFound)
	}
	v := encodeEmitCursor(c)
	err := db.meta.Update(func(txn *badger.Txn) error { return txn.Set(emitCursorKey(streamID, subject), v) })
	if err == nil {
		err = db.meta.Sync()
	}
	if err != nil {
		return db.writeFailed("emit cursor", err)
	}
	db.writeOK()
	return nil
}

// encodeEmitCursor encodes c as a version-2 value: closed-to fi64,
// final-to fi64, late-known u8, late-seen u64.
func encodeEmitCursor(c EmitCursor) []byte {
	v := []byte{emitCursorVersion}
	v = binary.BigEndian.AppendUint64(v, flip(c.ClosedTo))
	v = binary.BigEndian.AppendUint64(v, flip(c.FinalTo))
	known := byte(0)
	if c.LateKnown {
		known = 1
	}
	v = append(v, known)
	v = binary.BigEndian.AppendUint64(v, c.LateSeen)
	return appendCRC(v)
}

// decodeEmitCursor decodes a version-1 or version-2 value of key k.
func decodeEmitCursor(k, v []byte) (EmitCursor, error) {
	want := 25
	version := byte(emitCursorVersion)
	if len(v) > 0 && v[0] == emitCursorV1 {
		want, version = 16, emitCursorV1
	}
	body, err := unframe(k, v, version)
	if err != nil {
		return EmitCursor{}, err
	}
	if len(body) != want {
		return EmitCursor{}, corrupt(k, fmt.Sprintf("emit cursor (version %d) body is %d bytes, want %d", version, len(body), want))
	}
	c := EmitCursor{ClosedTo: unflip(binary.BigEndian.Uint64(body)), FinalTo: unflip(binary.BigEndian.Uint64(body[8:]))}
	if version == emitCursorV1 {
		return c, nil
	}
	if body[16] > 1 {
		return EmitCursor{}, corrupt(k, fmt.Sprintf("emit cursor late-known byte %d", body[16]))
	}
	c.LateKnown, c.LateSeen = body[16] == 1, binary.BigEndian.Uint64(body[17:])
	return c, nil
}
