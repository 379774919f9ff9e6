package query_test

import (
	"testing"

	"github.com/sketchd/sketchd/internal/store"
)

// openBadger opens a real Badger store on tb's temp dir, without the
// retention loop, closed when tb ends.
func openBadger(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(tb.TempDir(), nil, nil, store.Options{RetentionInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}
