package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

const (
	minute = int64(time.Minute)
	hour   = int64(time.Hour)
	day    = int64(24 * time.Hour)
)

// testSpec returns a valid, normalized stream spec.
func testSpec(name string, gran time.Duration) sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name = name
	s.Subject = "events." + name
	s.GroupBy = []string{"country"}
	s.Granularity = sketchd.Duration(gran)
	// Keep every pane: the tests' panes are at fixed times near the epoch,
	// and reads honour the retention as of the wall clock.
	s.Retention = 0
	s.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "user"}}
	s.Normalize()
	return s
}

// testLogger logs Warn and above to the test log.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SKETCHD_STORE_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(b)))
	return len(b), nil
}

// quietOptions disables the background loop's timers.
func quietOptions() Options {
	o := DefaultOptions()
	o.GCInterval = -1
	o.RetentionInterval = -1
	return o
}

func openTest(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, testLogger(t), nil, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func createTest(t testing.TB, db *DB, name string, gran time.Duration) StreamInfo {
	t.Helper()
	info, err := db.CreateStream(t.Context(), testSpec(name, gran))
	if err != nil {
		t.Fatalf("CreateStream(%s): %v", name, err)
	}
	return info
}

// blob returns n deterministic pseudo-random bytes.
func blob(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func pane(key string, start int64, applied uint64, blobs ...[]byte) sketchd.PaneRecord {
	return sketchd.PaneRecord{Key: key, Start: start, Events: applied * 3, Applied: applied, Sketches: blobs}
}

func commit(t testing.TB, db *DB, sid uint32, pos uint64, panes ...sketchd.PaneRecord) {
	t.Helper()
	cp := sketchd.Checkpoint{Position: pos, MaxEventTime: int64(pos), Watermark: int64(pos) - 1}
	if err := db.Commit(t.Context(), sid, sketchd.Flush{Panes: panes, Checkpoint: cp}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func equalPane(a, b sketchd.PaneRecord) bool {
	if a.Key != b.Key || a.Start != b.Start || a.Final != b.Final || a.Events != b.Events ||
		a.Applied != b.Applied || len(a.Sketches) != len(b.Sketches) {
		return false
	}
	for i := range a.Sketches {
		if !bytes.Equal(a.Sketches[i], b.Sketches[i]) {
			return false
		}
	}
	return true
}

func paneString(p sketchd.PaneRecord) string {
	return fmt.Sprintf("{%q %d final=%v ev=%d ap=%d n=%d}", p.Key, p.Start, p.Final, p.Events, p.Applied, len(p.Sketches))
}

// scanAll collects ScanPanes' output as "key@start" strings.
func scanAll(t testing.TB, db *DB, sid uint32, keys []string, from, to int64) []string {
	t.Helper()
	var got []string
	err := db.ScanPanes(t.Context(), sid, keys, from, to, func(p sketchd.PaneRecord) error {
		got = append(got, fmt.Sprintf("%s@%d", p.Key, p.Start))
		return nil
	})
	if err != nil {
		t.Fatalf("ScanPanes: %v", err)
	}
	return got
}

func keysAll(t testing.TB, db *DB, sid uint32, from, to int64) []string {
	t.Helper()
	var got []string
	err := db.Keys(t.Context(), sid, from, to, func(k string) error {
		got = append(got, k)
		return nil
	})
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	return got
}
