package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sketchd/sketchd"
)

func TestPaneRoundTrip(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "rt", time.Minute).ID
	ctx := context.Background()
	want := []sketchd.PaneRecord{
		pane("a", 0, 1),                                               // no sketches
		pane("a", minute, 2, []byte{}),                                // one empty blob
		pane("a", 2*minute, 3, blob(1, 1), blob(2, 2048)),             // small and 2 KB
		pane("b", -5*minute, 4, blob(3, 1<<20), []byte{}),             // 1 MB, before 1970
		pane("", 7*day, 5, blob(4, 100), blob(5, 0), nil),             // empty key, nil blob
		pane(strings.Repeat("k\x00\xff", 1000), -day, 6, blob(6, 17)), // 3 KB key
	}
	want[2].Final = true
	commit(t, db, sid, 10, want...)
	for _, w := range want {
		got, ok, err := db.Pane(ctx, sid, w.Key, w.Start)
		if err != nil || !ok {
			t.Fatalf("Pane(%q, %d) = ok %v, err %v", w.Key, w.Start, ok, err)
		}
		if !equalPane(got, w) {
			t.Errorf("Pane round trip:\n got %s\nwant %s", paneString(got), paneString(w))
		}
		var scanned []sketchd.PaneRecord
		if err := db.ScanPanes(ctx, sid, []string{w.Key}, w.Start, w.Start+1, func(p sketchd.PaneRecord) error {
			scanned = append(scanned, p)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(scanned) != 1 || !equalPane(scanned[0], w) {
			t.Errorf("ScanPanes(%q, %d) = %d panes, want it", w.Key, w.Start, len(scanned))
		}
	}
	if _, ok, err := db.Pane(ctx, sid, "a", 99*minute); ok || err != nil {
		t.Errorf("missing pane: ok %v err %v, want false nil", ok, err)
	}
	// Overwrite: the latest commit wins.
	upd := pane("a", 0, 9, blob(9, 64))
	commit(t, db, sid, 11, upd)
	if got, _, _ := db.Pane(ctx, sid, "a", 0); !equalPane(got, upd) {
		t.Errorf("after update got %s", paneString(got))
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	sid := createTest(t, db, "cp", time.Minute).ID
	if _, ok, err := db.Checkpoint(ctx, sid); ok || err != nil {
		t.Fatalf("fresh stream: ok %v err %v", ok, err)
	}
	want := sketchd.Checkpoint{
		Position: 1<<40 + 5, MaxEventTime: -12345, Watermark: -22345,
		Counters: sketchd.Counters{OnTime: 1, Late: 2, TooLate: 3, Future: 4, Skipped: 5,
			Invalid: map[string]uint64{"json": 6, "time": 7}},
	}
	if err := db.Commit(ctx, sid, sketchd.Flush{Checkpoint: want}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.Checkpoint(ctx, sid)
	if err != nil || !ok {
		t.Fatalf("Checkpoint: ok %v err %v", ok, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, _, err := db.Checkpoint(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown stream: err %v, want ErrNotFound", err)
	}
}

func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := Open(dir, testLogger(t), nil, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	b := createTest(t, db, "beta", time.Minute)
	a := createTest(t, db, "alpha", time.Hour)
	if a.ID == b.ID || a.ID == 0 || b.ID == 0 {
		t.Fatalf("IDs %d %d", a.ID, b.ID)
	}
	if _, err := db.CreateStream(ctx, testSpec("alpha", time.Minute)); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: err %v, want ErrExists", err)
	}
	if _, err := db.CreateStream(ctx, sketchd.Stream{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no name: err %v, want ErrInvalid", err)
	}
	list, err := db.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Spec.Name != "alpha" || list[1].Spec.Name != "beta" {
		t.Fatalf("Streams = %v", list)
	}
	got, err := db.Stream(ctx, "alpha")
	if err != nil || got.ID != a.ID || got.Spec.Granularity != sketchd.Duration(time.Hour) {
		t.Fatalf("Stream(alpha) = %+v, %v", got, err)
	}
	if _, err := db.Stream(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stream(nope): %v", err)
	}
	commit(t, db, a.ID, 1, pane("k", 0, 1, blob(1, 10)))
	if err := db.DeleteStream(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteStream(ctx, "alpha"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if db.countPrefix(prefixPane, a.ID) != 0 || db.countPrefix(prefixIndex, a.ID) != 0 {
		t.Errorf("deleted stream left data")
	}
	if err := db.Commit(ctx, a.ID, sketchd.Flush{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("commit to deleted stream: %v", err)
	}
	a2 := createTest(t, db, "alpha", time.Minute)
	if a2.ID == a.ID || a2.ID == b.ID {
		t.Errorf("recreated alpha got reused ID %d", a2.ID)
	}
	if _, ok, _ := db.Checkpoint(ctx, a2.ID); ok {
		t.Errorf("recreated stream has a checkpoint")
	}
	if err := db.DeleteStream(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// IDs are never reused across restarts either, even of the last ID.
	db = openTest(t, dir, quietOptions())
	list, _ = db.Streams(ctx)
	if len(list) != 1 || list[0].Spec.Name != "beta" || list[0].ID != b.ID {
		t.Fatalf("after reopen Streams = %+v", list)
	}
	if !list[0].Created.Equal(b.Created) {
		t.Errorf("Created %v, want %v", list[0].Created, b.Created)
	}
	if fmt.Sprint(list[0].Spec) != fmt.Sprint(b.Spec) {
		t.Errorf("spec changed across reopen:\n got %+v\nwant %+v", list[0].Spec, b.Spec)
	}
	c := createTest(t, db, "gamma", time.Minute)
	if c.ID <= a2.ID {
		t.Errorf("ID %d after reopen, want > %d", c.ID, a2.ID)
	}
}

func TestReopenAfterClose(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := Open(dir, testLogger(t), nil, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	sid := createTest(t, db, "s", time.Minute).ID
	var want []sketchd.PaneRecord
	for i := range 50 {
		want = append(want, pane(fmt.Sprintf("k%02d", i%5), int64(i/5)*minute, uint64(i+1), blob(uint64(i), 100+i)))
	}
	commit(t, db, sid, 50, want...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	for _, w := range want {
		got, ok, err := db.Pane(ctx, sid, w.Key, w.Start)
		if err != nil || !ok || !equalPane(got, w) {
			t.Fatalf("after reopen Pane(%q,%d) = %s ok %v err %v", w.Key, w.Start, paneString(got), ok, err)
		}
	}
	if cp, ok, err := db.Checkpoint(ctx, sid); err != nil || !ok || cp.Position != 50 {
		t.Errorf("checkpoint after reopen: %+v %v %v", cp, ok, err)
	}
	if got := keysAll(t, db, sid, 0, day); len(got) != 5 {
		t.Errorf("Keys after reopen = %q", got)
	}
}

func TestLargeFlushSpansTransactions(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	sid := createTest(t, db, "big", time.Minute).ID
	const n, size = 3000, 4 << 10 // 12 MB, five times the transaction cap
	if limit := db.panes.MaxBatchSize(); int64(n*size) < 4*limit {
		t.Fatalf("flush of %d bytes is not bigger than the txn cap %d", n*size, limit)
	}
	panes := make([]sketchd.PaneRecord, n)
	for i := range panes {
		panes[i] = pane(fmt.Sprintf("key-%04d", i%300), int64(i/300)*minute, uint64(i+1), blob(uint64(i), size))
	}
	if err := db.Commit(ctx, sid, sketchd.Flush{Panes: panes, Checkpoint: sketchd.Checkpoint{Position: n}}); err != nil {
		t.Fatal(err)
	}
	count := 0
	keys := keysAll(t, db, sid, 0, day)
	if len(keys) != 300 {
		t.Fatalf("Keys = %d, want 300", len(keys))
	}
	err := db.ScanPanes(ctx, sid, keys, 0, day, func(p sketchd.PaneRecord) error {
		count++
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("scanned %d panes (err %v), want %d", count, err, n)
	}
	for _, i := range []int{0, 1234, n - 1} {
		got, ok, err := db.Pane(ctx, sid, panes[i].Key, panes[i].Start)
		if err != nil || !ok || !equalPane(got, panes[i]) {
			t.Errorf("pane %d not intact", i)
		}
	}
	if cp, _, _ := db.Checkpoint(ctx, sid); cp.Position != n {
		t.Errorf("checkpoint %d", cp.Position)
	}
}

func TestCommitInvalid(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	sid := createTest(t, db, "inv", time.Minute).ID
	tests := []struct {
		name string
		sid  uint32
		p    sketchd.PaneRecord
		want error
	}{
		{"unknown stream", 777, pane("a", 0, 1), ErrNotFound},
		{"key too long", sid, pane(strings.Repeat("x", sketchd.MaxKeyLen+1), 0, 1), ErrInvalid},
		{"pane too large", sid, pane("a", 0, 1, blob(1, 1<<20), blob(2, 1<<20), blob(3, 1<<20)), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Commit(ctx, tt.sid, sketchd.Flush{Panes: []sketchd.PaneRecord{tt.p}})
			if !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
	if err := db.Healthy(); err != nil {
		t.Errorf("invalid arguments made the store unhealthy: %v", err)
	}
	if _, ok, _ := db.Pane(ctx, sid, "a", 0); ok {
		t.Errorf("a rejected flush wrote a pane")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.Commit(cctx, sid, sketchd.Flush{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, err := Open(t.TempDir(), testLogger(t), reg, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	sid := createTest(t, db, "m", time.Minute).ID
	commit(t, db, sid, 2, pane("a", 0, 1, blob(1, 10)), pane("b", 0, 2))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		if m := mf.GetMetric(); len(m) == 1 && m[0].GetCounter() != nil {
			found[mf.GetName()] = m[0].GetCounter().GetValue()
		} else {
			found[mf.GetName()] = -1
		}
	}
	for _, name := range []string{"sketchd_store_commit_duration_seconds", "sketchd_store_commit_bytes_total",
		"sketchd_store_lsm_size_bytes", "sketchd_store_vlog_size_bytes", "sketchd_store_compaction_tables"} {
		if _, ok := found[name]; !ok {
			t.Errorf("metric %s not gathered", name)
		}
	}
	if got := found["sketchd_store_commit_panes_total"]; got != 2 {
		t.Errorf("sketchd_store_commit_panes_total = %v, want 2", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Close unregisters: the same registry can take a reopened store.
	db2, err := Open(t.TempDir(), testLogger(t), reg, quietOptions())
	if err != nil {
		t.Fatalf("reopen with the same registry: %v", err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestInMemory(t *testing.T) {
	o := quietOptions()
	o.InMemory = true
	db := openTest(t, "", o)
	sid := createTest(t, db, "mem", time.Minute).ID
	commit(t, db, sid, 1, pane("a", 0, 1, blob(1, 10)))
	if got := scanAll(t, db, sid, []string{"a"}, 0, minute); !slices.Equal(got, []string{"a@0"}) {
		t.Errorf("got %q", got)
	}
}
