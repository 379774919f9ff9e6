// Package panetest is an in-memory store of pane records for tests: it
// implements query.PaneReader and window.Loader with the store's semantics
// (a record replaces the record of the same key and start; scans deliver
// each key's panes consecutively, in start order, keys in order). It imports
// only the root package, so the tests of window, query and their consumers
// can all use it.
package panetest

import (
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/sketchd/sketchd"
)

// Store holds pane records in memory. It is safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	panes map[string]map[int64]sketchd.PaneRecord // key -> start -> record
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{panes: map[string]map[int64]sketchd.PaneRecord{}} }

// Put stores recs, each replacing the record of its key and start.
func (s *Store) Put(recs ...sketchd.PaneRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if s.panes[r.Key] == nil {
			s.panes[r.Key] = map[int64]sketchd.PaneRecord{}
		}
		s.panes[r.Key][r.Start] = r
	}
}

// Pane returns the record of key and start (window.Loader).
func (s *Store) Pane(_ context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.panes[key][start]
	return r, ok, nil
}

// Keys calls fn, in key order, for each key with a pane starting in
// [from, to) (query.PaneReader). The stream id is ignored: one Store is one
// stream.
func (s *Store) Keys(ctx context.Context, _ uint32, from, to int64, fn func(string) error) error {
	s.mu.Lock()
	var keys []string
	for k, ps := range s.panes {
		for start := range ps {
			if start >= from && start < to {
				keys = append(keys, k)
				break
			}
		}
	}
	s.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// ScanPanes calls fn for each pane of keys starting in [from, to), by key
// then start (query.PaneReader).
func (s *Store) ScanPanes(ctx context.Context, _ uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	s.mu.Lock()
	var recs []sketchd.PaneRecord
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		for start, r := range s.panes[k] {
			if start >= from && start < to {
				recs = append(recs, r)
			}
		}
	}
	s.mu.Unlock()
	sortRecords(recs)
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// All returns every record, by key then start.
func (s *Store) All() []sketchd.PaneRecord {
	s.mu.Lock()
	var recs []sketchd.PaneRecord
	for _, ps := range s.panes {
		for _, r := range ps {
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	sortRecords(recs)
	return recs
}

func sortRecords(recs []sketchd.PaneRecord) {
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Key != recs[j].Key {
			return recs[i].Key < recs[j].Key
		}
		return recs[i].Start < recs[j].Start
	})
}
