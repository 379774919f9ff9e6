package api

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// storeFixture is the API over a real Badger store on disk (t.TempDir()),
// holding the shared fixture's panes (real encoded sketches from a real
// window.Aggregator), read by a real query.Querier.
type storeFixture struct {
	*fixture
	dir  string
	db   *store.DB
	info store.StreamInfo
	opts []fixtureOpt
}

// storeOptions: no background retention or GC (the fixture's times are
// fixed, the wall clock is not) and a fixed clock.
func storeOptions() store.Options {
	o := store.DefaultOptions()
	o.GCInterval = -1
	o.RetentionInterval = -1
	o.Now = func() time.Time { return t0 }
	return o
}

func openStore(tb testing.TB, dir string) *store.DB {
	tb.Helper()
	db, err := store.Open(dir, nil, nil, storeOptions())
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() }) // idempotent
	return db
}

// allPanes returns the shared fixture's panes, by key then start.
func allPanes(s *paneStore) []sketchd.PaneRecord { return s.All() }

// newStoreFixture commits the shared panes into a new Badger store and
// serves the API over it.
func newStoreFixture(tb testing.TB, opts ...fixtureOpt) *storeFixture {
	tb.Helper()
	base := newFixture(tb) // builds the shared panes once
	f := &storeFixture{dir: tb.TempDir(), opts: opts}
	f.db = openStore(tb, f.dir)
	ctx := context.Background()
	info, err := f.db.CreateStream(ctx, base.status.Spec)
	if err != nil {
		tb.Fatal(err)
	}
	f.info = info
	panes := allPanes(base.store)
	if len(panes) == 0 {
		tb.Fatal("the shared fixture has no panes")
	}
	if err := f.db.Commit(ctx, info.ID, sketchd.Flush{Panes: panes, Checkpoint: sharedCP}); err != nil {
		tb.Fatal(err)
	}
	f.serve(tb, base)
	return f
}

// serve builds a handler over f.db (a new querier: no cached panes).
func (f *storeFixture) serve(tb testing.TB, base *fixture) {
	tb.Helper()
	st := base.status
	st.ID = f.info.ID
	fx := &fixture{streams: newFakeStreams(st), store: base.store, evs: base.evs, status: st}
	cfg := Config{
		Streams: fx.streams,
		Querier: newQuerier(tb, f.db, query.Options{}),
		Now:     func() time.Time { return t0.Add(fixtureSpan) },
		Logger:  slog.New(slog.DiscardHandler),
	}
	for _, o := range f.opts {
		o(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	fx.h = h
	f.fixture = fx
}

// reopen closes the store (so its files can be rewritten), runs edit on
// the closed directory, opens it again and serves a fresh handler.
func (f *storeFixture) reopen(tb testing.TB, edit func(dir string)) {
	tb.Helper()
	if err := f.db.Close(); err != nil {
		tb.Fatal(err)
	}
	edit(f.dir)
	f.db = openStore(tb, f.dir)
	f.serve(tb, f.fixture)
}

// paneKeys returns the distinct keys of the shared fixture, sorted.
func paneKeys(s *paneStore) []string {
	var out []string
	for _, r := range s.All() {
		if len(out) == 0 || out[len(out)-1] != r.Key {
			out = append(out, r.Key)
		}
	}
	return out
}
