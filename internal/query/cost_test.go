package query_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// heavyStore commits, to a real Badger store, one pane in the hour at
// hourStart for each of countries × devices keys (group_by country, device),
// with an HLL of one user: the stream of 300k keys when countries
// is 42,858 and devices 7.
func heavyStore(tb testing.TB, countries, devices int) (*store.DB, query.Target, int64) {
	tb.Helper()
	ctx := context.Background()
	db := openBadger(tb)
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "heavy", "events.heavy"
	spec.GroupBy = []string{"country", "device"}
	spec.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "user"}}
	spec.Normalize()
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		tb.Fatal(err)
	}
	params, err := spec.Aggregates["users"].SketchParams()
	if err != nil {
		tb.Fatal(err)
	}
	hourStart := time.Now().Truncate(time.Hour).Add(-3 * time.Hour).UnixNano()
	var batch []sketchd.PaneRecord
	pos := uint64(0)
	for c := range countries {
		for d := range devices {
			sk, err := sketchNew(params, fmt.Sprintf("u%d", c*devices+d))
			if err != nil {
				tb.Fatal(err)
			}
			pos++
			start := hourStart + int64(pos%60)*int64(time.Minute)
			batch = append(batch, sketchd.PaneRecord{
				Key: sketchd.EncodeKey(fmt.Sprintf("c%05d", c), fmt.Sprintf("d%d", d)), Start: start,
				Final: true, Events: 1, Applied: pos, Sketches: [][]byte{sk},
			})
			if len(batch) == 20_000 {
				commitPanes(tb, db, info.ID, pos, batch)
				batch = batch[:0]
			}
		}
	}
	commitPanes(tb, db, info.ID, pos, batch)
	t := query.Target{ID: info.ID, Spec: spec, Watermark: hourStart + int64(2*time.Hour), LastCommit: 1}
	return db, t, hourStart
}

func commitPanes(tb testing.TB, db *store.DB, sid uint32, pos uint64, panes []sketchd.PaneRecord) {
	tb.Helper()
	cp := sketchd.Checkpoint{Position: pos, MaxEventTime: int64(pos), Watermark: int64(pos) - 1}
	if err := db.Commit(context.Background(), sid, sketchd.Flush{Panes: panes, Checkpoint: cp}); err != nil {
		tb.Fatal(err)
	}
}

// heavyQuery is the query that must be refused:
// where=device=d1&group_by=country&step=1m over one hour.
func heavyQuery(hourStart int64) query.Query {
	return query.Query{
		Aggregate: "users", From: hourStart, To: hourStart + int64(time.Hour),
		Where: map[string][]string{"device": {"d1"}}, GroupBy: []string{"country"},
		Step: int64(time.Minute),
	}
}

// TestHeavyQueryRefusedBeforeDecoding runs the heavy query (where
// device=d1, group_by country, step 1m over an hour: 7k groups × 60 windows
// over a stream of 50k keys; SKETCHD_HEAVY_300K=1 builds the 300k
// keys and 42k groups, half a minute more) against real Badger: it is
// refused with max_output_windows from the key index alone, having
// decoded no pane and allocated under 50 MB (runtime.MemStats.TotalAlloc
// around the call); eight at once, under 100 MB together.
// BenchmarkHeavyQueryRefused times it at 300k keys.
func TestHeavyQueryRefusedBeforeDecoding(t *testing.T) {
	countries := 7_143
	if os.Getenv("SKETCHD_HEAVY_300K") != "" {
		countries = 42_858
	}
	db, tgt, hour := heavyStore(t, countries, 7)
	q := query.New(db, query.Options{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := q.Query(t.Context(), tgt, heavyQuery(hour))
	runtime.ReadMemStats(&after)
	var le *query.LimitError
	if !errors.As(err, &le) || le.Limit != "max_output_windows" || le.Max != 100_000 {
		t.Fatalf("err = %v, want max_output_windows 100000", err)
	}
	if d := q.Stats().Decoded; d != 0 {
		t.Errorf("decoded %d sketches before refusing", d)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("refused (%v) after allocating %.1f MB", err, float64(alloc)/1e6)
	if alloc >= 50e6 {
		t.Errorf("allocated %d bytes, want < 50 MB", alloc)
	}
	// Eight at once: each is refused as cheaply.
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = q.Query(t.Context(), tgt, heavyQuery(hour)) })
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	for _, err := range errs {
		if !errors.As(err, &le) || le.Limit != "max_output_windows" {
			t.Errorf("one of 8 at once: err = %v", err)
		}
	}
	alloc = after.TotalAlloc - before.TotalAlloc
	t.Logf("8 at once: %.1f MB allocated in all", float64(alloc)/1e6)
	if alloc >= 8*50e6/4 || q.Stats().Decoded != 0 {
		t.Errorf("8 at once allocated %d bytes and decoded %d, want < 100 MB and 0", alloc, q.Stats().Decoded)
	}
}

// TestQueryBytesLimit: a query whose estimated memory (from its planned
// scans) exceeds MaxQueryBytes is refused with max_query_bytes before any
// decode, and the same query fits a larger limit.
func TestQueryBytesLimit(t *testing.T) {
	db, tgt, hour := heavyStore(t, 200, 2)
	qu := heavyQuery(hour)
	// 200 keys × 60 panes held + 200 groups × 60 windows: 24,000 sketches
	// of 1 KiB (the size assumed before any scan) + 64 bytes, 26 MB.
	q := query.New(db, query.Options{MaxQueryBytes: 1 << 20})
	_, err := q.Query(t.Context(), tgt, qu)
	var le *query.LimitError
	if !errors.As(err, &le) || le.Limit != "max_query_bytes" || le.Got <= le.Max {
		t.Fatalf("err = %v, want max_query_bytes", err)
	}
	if d := q.Stats().Decoded; d != 0 {
		t.Errorf("decoded %d sketches before refusing", d)
	}
	q = query.New(db, query.Options{MaxQueryBytes: 64 << 20})
	res, err := q.Query(t.Context(), tgt, qu)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 200 || res.Panes != 200 {
		t.Errorf("groups %d panes %d, want 200 and 200", len(res.Groups), res.Panes)
	}
}

// TestServerBudget: queries share TotalQueryBytes. While one holds more
// than half of it, a second waits BudgetWait and fails with ErrBusy; a
// small one runs beside it even while a large one waits (no head-of-line
// blocking); once the first is done, the second runs.
func TestServerBudget(t *testing.T) {
	db, tgt, hour := heavyStore(t, 200, 2)
	qu := heavyQuery(hour)
	// 26 MB each (see TestQueryBytesLimit), of a 40 MB budget.
	hold := make(chan struct{})
	held := make(chan struct{})
	r := &gateReader{PaneReader: db, hold: hold, held: held}
	q := query.New(r, query.Options{TotalQueryBytes: 40 << 20, BudgetWait: 50 * time.Millisecond, ResultEntries: -1})
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = q.Query(context.Background(), tgt, qu) })
	<-held // the first holds its share, blocked in its scan
	_, err := q.Query(t.Context(), tgt, qu)
	if !errors.Is(err, query.ErrBusy) {
		t.Errorf("second query while the first holds the budget: err = %v, want ErrBusy", err)
	}
	// A small query (one key) fits beside the first and runs, even while a
	// large one waits for the budget.
	var bigErr error
	wg.Go(func() { _, bigErr = q.Query(context.Background(), tgt, qu) })
	small := qu
	small.Where = map[string][]string{"country": {"c00007"}, "device": {"d1"}}
	time.Sleep(10 * time.Millisecond) // let the large one start waiting
	if _, err := q.Query(t.Context(), tgt, small); err != nil {
		t.Errorf("small query beside a waiting large one: %v", err)
	}
	close(hold)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if bigErr != nil && !errors.Is(bigErr, query.ErrBusy) {
		t.Errorf("large query that waited: %v", bigErr)
	}
	if _, err := q.Query(t.Context(), tgt, qu); err != nil {
		t.Errorf("after the first finished: %v", err)
	}
}

// gateReader is a real store whose first ScanPanes waits for hold, after
// telling held; the others pass.
type gateReader struct {
	query.PaneReader
	first      atomic.Bool
	hold, held chan struct{}
}

func (g *gateReader) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	if g.first.CompareAndSwap(false, true) {
		close(g.held)
		<-g.hold
	}
	return g.PaneReader.ScanPanes(ctx, id, keys, from, to, fn)
}

// TestQueryCancelled: a query whose client went away stops: with a
// context cancelled before it starts it reads nothing; cancelled from
// inside its scan (after the first pane), it returns context.Canceled
// without decoding the rest.
func TestQueryCancelled(t *testing.T) {
	db, tgt, hour := heavyStore(t, 200, 2)
	qu := heavyQuery(hour)
	q := query.New(db, query.Options{ResultEntries: -1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := q.Query(ctx, tgt, qu); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: err = %v", err)
	}
	if d := q.Stats().Decoded; d != 0 {
		t.Errorf("decoded %d with a cancelled context", d)
	}
	ctx, cancel = context.WithCancel(t.Context())
	r := &cancelReader{PaneReader: db, cancel: cancel}
	q = query.New(r, query.Options{ResultEntries: -1})
	if _, err := q.Query(ctx, tgt, qu); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during the scan: err = %v", err)
	}
	if d := q.Stats().Decoded; d > 1 {
		t.Errorf("decoded %d panes after the client went away at the first, want at most 1", d)
	}
}

// cancelReader is a real store that cancels the query's context at the
// first pane it delivers, as a client going away mid-scan.
type cancelReader struct {
	query.PaneReader
	cancel context.CancelFunc
}

func (c *cancelReader) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	return c.PaneReader.ScanPanes(ctx, id, keys, from, to, func(r sketchd.PaneRecord) error {
		c.cancel()
		return fn(r)
	})
}

// sketchNew encodes a sketch of params holding item.
func sketchNew(p sketch.Params, item string) ([]byte, error) {
	sk, err := sketch.New(p)
	if err != nil {
		return nil, err
	}
	if err := sketch.Add(sk, []byte(item), 0, 0); err != nil {
		return nil, err
	}
	return sk.AppendBinary(nil)
}

// BenchmarkHeavyQueryRefused times the refusal of the heavy query
// over the stream (300k keys, 42k of them device=d1) in real
// Badger: the target is under 100 ms and 50 MB.
//
//	go test ./internal/query -run '^$' -bench HeavyQueryRefused -benchmem
func BenchmarkHeavyQueryRefused(b *testing.B) {
	db, tgt, hour := heavyStore(b, 42_858, 7)
	q := query.New(db, query.Options{})
	qu := heavyQuery(hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Query(b.Context(), tgt, qu); !errors.Is(err, query.ErrTooLarge) {
			b.Fatalf("err = %v", err)
		}
	}
	b.ReportMetric(float64(q.Stats().Decoded), "decoded")
}
