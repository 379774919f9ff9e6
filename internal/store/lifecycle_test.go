package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

func TestDropBefore(t *testing.T) {
	o := quietOptions()
	o.PartitionSpan = 24 * time.Hour // retention drops whole partitions: days here
	db := openTest(t, t.TempDir(), o)
	ctx := context.Background()
	sid := createTest(t, db, "r", time.Hour).ID
	keep := createTest(t, db, "keep", time.Hour).ID
	// Panes in days -2 .. 3, two keys each.
	var ps []sketchd.PaneRecord
	for d := int64(-2); d <= 3; d++ {
		ps = append(ps, pane("a", d*day, 1), pane("a", d*day+23*hour, 2), pane("b", d*day+12*hour, 3))
	}
	commit(t, db, sid, 1, ps...)
	commit(t, db, keep, 1, ps...)
	all := func() []string { return scanAll(t, db, sid, []string{"a", "b"}, math.MinInt64, math.MaxInt64) }

	// Cutoff inside day 0: days -2 and -1 end at or before it; day 0 stays.
	if err := db.DropBefore(ctx, sid, 5*hour); err != nil {
		t.Fatal(err)
	}
	want := append(at("a", 0, 23, 24, 47, 48, 71, 72, 95), at("b", 12, 36, 60, 84)...)
	if got := all(); !slices.Equal(got, want) {
		t.Fatalf("after DropBefore(5h):\n got %q\nwant %q", got, want)
	}
	if n := db.countPrefix(prefixIndex, sid); n != 8 { // 4 days x 2 keys
		t.Errorf("key index has %d entries, want 8", n)
	}
	if got := keysAll(t, db, sid, math.MinInt64, 0); got != nil {
		t.Errorf("Keys before 0 after drop: %q", got)
	}
	// Cutoff exactly at a partition end drops that partition too.
	if err := db.DropBefore(ctx, sid, 2*day); err != nil {
		t.Fatal(err)
	}
	want = append(at("a", 48, 71, 72, 95), at("b", 60, 84)...)
	if got := all(); !slices.Equal(got, want) {
		t.Fatalf("after DropBefore(2d):\n got %q\nwant %q", got, want)
	}
	if n := db.countPrefix(prefixIndex, sid); n != 4 {
		t.Errorf("key index has %d entries, want 4", n)
	}
	// Nothing to drop is a no-op.
	if err := db.DropBefore(ctx, sid, -10*day); err != nil {
		t.Fatal(err)
	}
	// The other stream is untouched.
	if got := scanAll(t, db, keep, []string{"a", "b"}, math.MinInt64, math.MaxInt64); len(got) != len(ps) {
		t.Errorf("other stream lost panes: %d of %d", len(got), len(ps))
	}
	if err := db.DropBefore(ctx, 999, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown stream: %v", err)
	}
}

func TestRetentionLoop(t *testing.T) {
	var now atomic.Int64
	now.Store(10 * day)
	o := quietOptions()
	o.RetentionInterval = 5 * time.Millisecond
	o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	db := openTest(t, t.TempDir(), o)
	spec := testSpec("ret", time.Hour)
	spec.Retention = sketchd.Duration(48 * time.Hour)
	info, err := db.CreateStream(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, db, info.ID, 1, pane("a", 7*day, 1), pane("a", 8*day+hour, 2), pane("a", 9*day, 3))
	// now - retention = 8d: day 7 ends at 8d and goes, day 8 stays.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := scanAll(t, db, info.ID, []string{"a"}, 0, math.MaxInt64)
		if slices.Equal(got, at("a", 8*24+1, 9*24)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not drop day 7: %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentScanDuringCommits(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	sid := createTest(t, db, "c", time.Minute).ID
	keys := []string{"k0", "k1", "k2", "k3"}
	const flushes = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range flushes {
			var ps []sketchd.PaneRecord
			for _, k := range keys {
				ps = append(ps, pane(k, int64(i)*minute, uint64(i+1), blob(uint64(i), 512)))
			}
			if err := db.Commit(ctx, sid, sketchd.Flush{Panes: ps, Checkpoint: sketchd.Checkpoint{Position: uint64(i + 1)}}); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
		}
	}()
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				last := map[string]int64{}
				err := db.ScanPanes(ctx, sid, keys, 0, day, func(p sketchd.PaneRecord) error {
					if prev, ok := last[p.Key]; ok && p.Start <= prev {
						return fmt.Errorf("reader %d: %s out of order", r, p.Key)
					}
					last[p.Key] = p.Start
					if len(p.Sketches) != 1 || len(p.Sketches[0]) != 512 {
						return fmt.Errorf("reader %d: bad pane %s", r, paneString(p))
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if err := db.Keys(ctx, sid, 0, day, func(string) error { return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := scanAll(t, db, sid, keys[:1], 0, day); len(got) != flushes {
		t.Errorf("k0 has %d panes, want %d", len(got), flushes)
	}
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	db, err := Open(t.TempDir(), testLogger(t), nil, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sid := createTest(t, db, "x", time.Minute).ID
	var ps []sketchd.PaneRecord
	for i := range 200 {
		ps = append(ps, pane("k", int64(i)*minute, 1, blob(uint64(i), 64)))
	}
	commit(t, db, sid, 1, ps...)

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 4 { // readers racing Close
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				err := db.ScanPanes(ctx, sid, []string{"k"}, 0, day, func(sketchd.PaneRecord) error { return nil })
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("ScanPanes during Close: %v", err)
					return
				}
			}
		}()
	}
	for range 3 { // concurrent Closes
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			time.Sleep(time.Millisecond)
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}

	checks := []struct {
		name string
		err  error
		want []error
	}{
		{"Healthy", db.Healthy(), []error{ErrClosed}},
		{"Commit", db.Commit(ctx, sid, sketchd.Flush{}), []error{ErrClosed, ErrUnavailable}},
		{"CreateStream", func() error { _, err := db.CreateStream(ctx, testSpec("y", time.Minute)); return err }(), []error{ErrClosed, ErrUnavailable}},
		{"DeleteStream", db.DeleteStream(ctx, "x"), []error{ErrClosed, ErrUnavailable}},
		{"DropBefore", db.DropBefore(ctx, sid, 0), []error{ErrClosed, ErrUnavailable}},
		{"ScanPanes", db.ScanPanes(ctx, sid, []string{"k"}, 0, 1, nil), []error{ErrClosed}},
		{"Keys", db.Keys(ctx, sid, 0, 1, nil), []error{ErrClosed}},
		{"Pane", func() error { _, _, err := db.Pane(ctx, sid, "k", 0); return err }(), []error{ErrClosed}},
		{"Checkpoint", func() error { _, _, err := db.Checkpoint(ctx, sid); return err }(), []error{ErrClosed}},
		{"Streams", func() error { _, err := db.Streams(ctx); return err }(), []error{ErrClosed}},
		{"Stream", func() error { _, err := db.Stream(ctx, "x"); return err }(), []error{ErrClosed}},
	}
	for _, c := range checks {
		for _, w := range c.want {
			if !errors.Is(c.err, w) {
				t.Errorf("%s after Close: %v, want %v", c.name, c.err, w)
			}
		}
	}
}

func TestWriteFailureIsUnavailable(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	sid := createTest(t, db, "u", time.Minute).ID
	if err := db.Healthy(); err != nil {
		t.Fatalf("fresh store unhealthy: %v", err)
	}
	// A failed write is reported until a later write succeeds.
	_ = db.writeFailed("commit", errors.New("no space left on device"))
	if h := db.Healthy(); !errors.Is(h, ErrUnavailable) || !strings.Contains(h.Error(), "no space") {
		t.Errorf("Healthy after a failed write = %v", h)
	}
	commit(t, db, sid, 1, pane("a", 0, 1))
	if h := db.Healthy(); h != nil {
		t.Errorf("Healthy after a good write = %v", h)
	}
	// Pull Badger away from under the store: every write now fails.
	if err := db.closeBadger(); err != nil {
		t.Fatal(err)
	}
	err := db.Commit(ctx, sid, sketchd.Flush{Panes: []sketchd.PaneRecord{pane("a", 0, 1)}})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Commit on failed Badger: %v, want ErrUnavailable", err)
	}
	if h := db.Healthy(); !errors.Is(h, ErrUnavailable) {
		t.Errorf("Healthy = %v, want the write error", h)
	}
}

// TestKillDuringCommits runs commits in a child process, SIGKILLs it in the
// middle of committing, and checks that every flush the child reported as
// committed (Commit returned) is intact after reopening.
func TestKillDuringCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperCommitter$", "-test.v") //nolint:gosec // re-exec of this test binary
	cmd.Env = append(os.Environ(), "SKETCHD_STORE_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	committed := 0
	seed := uint64(time.Now().UnixNano())
	target := 25 + int(seed%200) // some commits' settles cut short, some not
	t.Logf("seed %d: kill after %d commits", seed, target)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
			if committed >= target {
				break
			}
		}
	}
	// The child keeps committing; kill it mid-flight.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // drain: lines printed before the kill landed count too
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	if committed < 25 {
		t.Fatalf("child committed only %d flushes", committed)
	}

	db := openTest(t, dir, quietOptions())
	ctx := context.Background()
	info, err := db.Stream(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	cp, ok, err := db.Checkpoint(ctx, info.ID)
	if err != nil || !ok || cp.Position < uint64(committed) {
		t.Fatalf("checkpoint %+v ok %v err %v, want position >= %d", cp, ok, err, committed)
	}
	// Each pane holds its last committed flush, or a later one the child
	// had in flight.
	for i := 1; i <= committed; i++ {
		if i+helperRewrites <= committed {
			continue // a later committed flush rewrote its panes
		}
		for _, w := range helperFlush(i) {
			got, ok, err := db.Pane(ctx, info.ID, w.Key, w.Start)
			if err == nil && ok && got.Applied > uint64(i) && got.Applied <= uint64(committed+1) {
				w = helperFlush(int(got.Applied))[0]
				w.Key, w.Sketches = got.Key, [][]byte{blob(got.Applied*100+uint64(keyIndex(got.Key)), 2000)}
			}
			if err != nil || !ok || !equalPane(got, w) {
				t.Fatalf("flush %d pane %s: got %s ok %v err %v", i, paneString(w), paneString(got), ok, err)
			}
		}
	}
	settled := 0
	if err := db.panes.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = baseSpace(info.ID, 0).pane
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			settled++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if committed > 8*helperRewrites && settled == 0 {
		t.Errorf("no pane moved to the panes family after %d commits: the test does not cover moves", committed)
	}
	var inOpen int
	for _, s := range openStarts(t, db, info.ID) {
		if fin, _ := finalLimit(&info.Spec, cp.Watermark); s <= fin {
			inOpen++
		}
	}
	t.Logf("child committed %d flushes before SIGKILL; checkpoint at %d; %d panes in the panes family, %d final under it still in open (a move cut short)", committed, cp.Position, settled, inOpen)
}

// helperRewrites is how many flushes of the committer write each pane.
const helperRewrites = 4

// helperFlush is flush i of the committer: 20 panes of 2000-byte blobs,
// those of minute i/helperRewrites (each minute's panes are rewritten by
// helperRewrites flushes), with the watermark at that minute, so that
// commits keep moving the panes that turned final from the open family to
// the panes family.
func helperFlush(i int) []sketchd.PaneRecord {
	var ps []sketchd.PaneRecord
	for k := range 20 {
		ps = append(ps, pane(fmt.Sprintf("key-%02d", k), int64(i/helperRewrites)*minute, uint64(i), blob(uint64(i*100+k), 2000)))
	}
	return ps
}

func keyIndex(key string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "key-"))
	return n
}

// TestHelperCommitter is the child of TestKillDuringCommits. It commits
// flushes until it is killed, printing "committed N" after each.
func TestHelperCommitter(t *testing.T) {
	dir := os.Getenv("SKETCHD_STORE_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestKillDuringCommits")
	}
	db, err := Open(dir, testLogger(t), nil, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	info, err := db.CreateStream(context.Background(), testSpec("crash", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 1_000_000; i++ {
		cp := sketchd.Checkpoint{Position: uint64(i), Watermark: int64(i/helperRewrites) * minute}
		if err := db.Commit(context.Background(), info.ID, sketchd.Flush{Panes: helperFlush(i), Checkpoint: cp}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %d\n", i)
	}
}

// TestConcurrentAdmin runs commits, retention drops and stream churn at the
// same time (DropPrefix blocks Badger writes; the store must serialize).
func TestConcurrentAdmin(t *testing.T) {
	o := quietOptions()
	o.PartitionSpan = 24 * time.Hour // its cutoffs are checked against whole days
	db := openTest(t, t.TempDir(), o)
	ctx := context.Background()
	sid := createTest(t, db, "main", time.Hour).ID
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range 60 {
			f := sketchd.Flush{Panes: []sketchd.PaneRecord{pane("a", int64(i)*hour, uint64(i+1), blob(uint64(i), 256))}}
			if err := db.Commit(ctx, sid, f); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 20 {
			if err := db.DropBefore(ctx, sid, int64(i)*hour); err != nil {
				t.Errorf("DropBefore: %v", err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 10 {
			name := fmt.Sprintf("tmp%d", i)
			info, err := db.CreateStream(ctx, testSpec(name, time.Minute))
			if err != nil {
				t.Errorf("CreateStream: %v", err)
				return
			}
			err = db.Commit(ctx, info.ID, sketchd.Flush{Panes: []sketchd.PaneRecord{pane("x", 0, 1)}})
			if err != nil {
				t.Errorf("Commit to %s: %v", name, err)
			}
			if err := db.DeleteStream(ctx, name); err != nil {
				t.Errorf("DeleteStream: %v", err)
			}
		}
	}()
	wg.Wait()
	if err := db.Healthy(); err != nil {
		t.Errorf("unhealthy after concurrent admin: %v", err)
	}
	// The cutoffs stayed below 24h, so day 0 survived whole, and so did
	// everything after it.
	if got := scanAll(t, db, sid, []string{"a"}, 24*hour, 60*hour); len(got) != 36 {
		t.Errorf("got %d panes of day 1+, want 36", len(got))
	}
	if got := scanAll(t, db, sid, []string{"a"}, 0, 24*hour); len(got) != 24 {
		t.Errorf("got %d panes of day 0, want 24 (no cutoff reached its end)", len(got))
	}
}

// Issue 15, item 8: a stream with retention 2m answers no pane that
// ended longer ago, although its day partition is still on disk.
func TestReadsHonourRetentionPerPane(t *testing.T) {
	now := 10*day + 12*hour
	o := quietOptions()
	o.Now = func() time.Time { return time.Unix(0, now) }
	db := openTest(t, t.TempDir(), o)
	spec := testSpec("r2m", time.Minute)
	spec.Retention = sketchd.Duration(2 * time.Minute)
	info, err := db.CreateStream(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	var ps []sketchd.PaneRecord
	for i := int64(1); i <= 12; i++ { // panes 1..12 minutes old
		ps = append(ps, pane("a", now-i*minute, uint64(i)))
	}
	commit(t, db, info.ID, 12, ps...)
	got := scanAll(t, db, info.ID, []string{"a"}, 0, math.MaxInt64)
	// Kept: panes ending after now-2m, i.e. those starting 2m and 1m ago.
	if len(got) != 2 {
		t.Errorf("%d panes answered, want the 2 within retention: %q", len(got), got)
	}
	var keys []string
	if err := db.Keys(context.Background(), info.ID, 0, now-3*minute, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("keys of expired panes: %q", keys)
	}
}

// AlterStream stores the new spec and the alter log in one transaction;
// both survive a reopen, and the panes stay.
func TestAlterStreamPersists(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	spec := testSpec("alt", time.Minute)
	info, err := db.CreateStream(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, db, info.ID, 1, pane("a", minute, 1))
	next := spec
	next.AllowedLateness = sketchd.Duration(5 * time.Minute)
	alt := sketchd.Alteration{At: time.Unix(100, 0).UTC(), Changes: []string{"allowed_lateness: 1m0s -> 5m0s"}}
	if _, err := db.AlterStream(context.Background(), "alt", next, alt); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	got, err := db.Stream(context.Background(), "alt")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != info.ID || got.Spec.AllowedLateness != next.AllowedLateness || len(got.Alters) != 1 || got.Alters[0].Changes[0] != alt.Changes[0] {
		t.Errorf("after reopen: %+v", got)
	}
	if ps := scanAll(t, db, info.ID, []string{"a"}, 0, math.MaxInt64); len(ps) != 1 {
		t.Errorf("panes after the alter: %q", ps)
	}
	if err := db.DeleteStream(context.Background(), "alt"); err != nil {
		t.Fatal(err)
	}
}

// The instance id is generated once and kept across reopen.
func TestInstanceIDKept(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, quietOptions())
	id, err := db.InstanceID(context.Background())
	if err != nil || len(id) != 16 {
		t.Fatalf("instance id %q, %v", id, err)
	}
	if again, _ := db.InstanceID(context.Background()); again != id {
		t.Errorf("second call %q, first %q", again, id)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, quietOptions())
	if after, _ := db.InstanceID(context.Background()); after != id {
		t.Errorf("after reopen %q, before %q", after, id)
	}
	other := openTest(t, t.TempDir(), quietOptions())
	if o, _ := other.InstanceID(context.Background()); o == id {
		t.Errorf("two stores share the instance id %q", id)
	}
}
