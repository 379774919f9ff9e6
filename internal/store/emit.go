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
type EmitCursor struct {
	ClosedTo, FinalTo int64
}

const emitCursorVersion = 1

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
			body, err := unframe(k, v, emitCursorVersion)
			if err != nil {
				return err
			}
			if len(body) != 16 {
				return corrupt(k, fmt.Sprintf("emit cursor body is %d bytes, want 16", len(body)))
			}
			c = EmitCursor{unflip(binary.BigEndian.Uint64(body)), unflip(binary.BigEndian.Uint64(body[8:]))}
			ok = true
			return nil
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
	v := []byte{emitCursorVersion}
	v = binary.BigEndian.AppendUint64(v, flip(c.ClosedTo))
	v = binary.BigEndian.AppendUint64(v, flip(c.FinalTo))
	v = appendCRC(v)
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
