package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// The instance id is keyed prefixInstance (keys.go) -> a JSON frame of a
// string.

func instanceKey() []byte { return []byte{prefixInstance} }

// InstanceID returns this store's instance id: 16 lowercase hex digits,
// generated at first use and kept, so that sketchd's names on a shared
// NATS (durable consumers) are its own across restarts and never another
// instance's (docs/scale-out.md, step 1).
func (db *DB) InstanceID(ctx context.Context) (string, error) {
	if err := db.enterWrite(); err != nil {
		return "", err
	}
	defer db.leave()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	db.adminMu.Lock()
	defer db.adminMu.Unlock()
	var id string
	err := db.meta.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(instanceKey())
		switch {
		case err == nil:
			return item.Value(func(v []byte) error {
				body, err := unframe(item.Key(), v, jsonVersion)
				if err != nil {
					return err
				}
				id = string(body)
				return nil
			})
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("instance id: %w", err)
		}
		id = hex.EncodeToString(b[:])
		v := append([]byte{jsonVersion}, id...)
		return txn.Set(instanceKey(), appendCRC(v))
	})
	if err == nil {
		err = db.meta.Sync()
	}
	if err != nil {
		return "", db.writeFailed("instance id", err)
	}
	return id, nil
}
