package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sketchd/sketchd"
)

// paneModel is the panes a test wrote: key -> starts.
type paneModel struct {
	mu    sync.Mutex
	w     int64
	panes map[string]map[int64]bool
}

func newPaneModel(w int64) *paneModel {
	return &paneModel{w: w, panes: map[string]map[int64]bool{}}
}

func (m *paneModel) add(ps ...sketchd.PaneRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		if m.panes[p.Key] == nil {
			m.panes[p.Key] = map[int64]bool{}
		}
		m.panes[p.Key][p.Start] = true
	}
}

// dropBelow forgets the panes of partitions below keep.
func (m *paneModel) dropBelow(keep int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, starts := range m.panes {
		maps.DeleteFunc(starts, func(s int64, _ bool) bool { return floorDiv(s, m.w) < keep })
	}
}

// keys is what Keys(from, to) must return, by brute force: the keys with
// a pane in range, partition by partition, each partition's in byte
// order, each key at its first appearance.
func (m *paneModel) keys(from, to int64) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	type hit struct {
		part int64
		key  string
	}
	var hits []hit
	for k, starts := range m.panes {
		parts := map[int64]bool{}
		for s := range starts {
			if from <= s && s < to {
				parts[floorDiv(s, m.w)] = true
			}
		}
		for p := range parts {
			hits = append(hits, hit{p, k})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if a.part != b.part {
			return int(a.part - b.part)
		}
		return cmpString(a.key, b.key)
	})
	var out []string
	seen := map[string]bool{}
	for _, h := range hits {
		if !seen[h.key] {
			seen[h.key] = true
			out = append(out, h.key)
		}
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// randomPanes returns n panes of keys k00..k(nKeys-1) at random minutes
// of days [-1, 3).
func randomPanes(rng *rand.Rand, nKeys, n int) []sketchd.PaneRecord {
	ps := make([]sketchd.PaneRecord, n)
	for i := range ps {
		start := (rng.Int64N(4*1440) - 1440) * minute
		ps[i] = pane(fmt.Sprintf("k%02d", rng.IntN(nKeys)), start, 1, blob(uint64(i), 32))
	}
	return ps
}

// randomRange returns a range of minutes within days [-1, 4).
func randomRange(rng *rand.Rand) (from, to int64) {
	from = (rng.Int64N(5*1440) - 1440) * minute
	lengths := []int64{minute, 30 * minute, hour, 6 * hour, day, 2 * day}
	return from, from + lengths[rng.IntN(len(lengths))] + rng.Int64N(60)*minute
}

// checkKeys lists n random ranges, each twice (the second time the pane
// memo knows what the first saw), and compares them with the model.
func checkKeys(t *testing.T, list func(from, to int64) []string, m *paneModel, rng *rand.Rand, n int) {
	t.Helper()
	for range n {
		from, to := randomRange(rng)
		want := m.keys(from, to)
		for i := range 2 {
			if got := list(from, to); !slices.Equal(got, want) {
				t.Fatalf("Keys(%d, %d) listing %d:\n got %q\nwant %q", from/minute, to/minute, i, got, want)
			}
		}
	}
}

// TestKeysMatchPanes lists random ranges of random panes and compares them
// with a brute force over the panes written, across late panes that widen
// a key's span, retention dropping partitions and panes written again
// into a dropped partition, and a stream deleted and created again.
func TestKeysMatchPanes(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	info := createTest(t, db, "s", time.Minute)
	rng := rand.New(rand.NewPCG(1, 2))
	m := newPaneModel(info.PartitionWidth)
	list := func(from, to int64) []string { return keysAll(t, db, info.ID, from, to) }
	for i := range 10 {
		ps := randomPanes(rng, 20, 30)
		commit(t, db, info.ID, uint64(i+1), ps...)
		m.add(ps...)
		checkKeys(t, list, m, rng, 30)
	}

	// Retention drops days -1 and 0; new panes land in day 0 again.
	if err := db.DropBefore(t.Context(), info.ID, day); err != nil {
		t.Fatal(err)
	}
	m.dropBelow(1)
	checkKeys(t, list, m, rng, 100)
	for i := range 5 {
		var ps []sketchd.PaneRecord
		for _, p := range randomPanes(rng, 20, 30) {
			p.Start -= floorDiv(p.Start, day) * day // day 0
			ps = append(ps, p)
		}
		commit(t, db, info.ID, uint64(100+i), ps...)
		m.add(ps...)
		checkKeys(t, list, m, rng, 30)
	}

	// Deleted and created again: a new ID, nothing listed of the old one.
	if err := db.DeleteStream(t.Context(), "s"); err != nil {
		t.Fatal(err)
	}
	if err := db.Keys(t.Context(), info.ID, 0, day, func(string) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Keys of a deleted stream: %v", err)
	}
	info = createTest(t, db, "s", time.Minute)
	m = newPaneModel(info.PartitionWidth)
	for i := range 5 {
		ps := randomPanes(rng, 20, 30)
		commit(t, db, info.ID, uint64(i+1), ps...)
		m.add(ps...)
		checkKeys(t, list, m, rng, 30)
	}
}

// TestKeysAfterDropRewrite: a partition dropped and written again has new
// panes only; a pane a listing saw before the drop must not make a later
// listing return a key whose new panes are all outside the range. Checked:
// fails when dropPrefixes does not clear the memo.
func TestKeysAfterDropRewrite(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "s", time.Minute).ID
	commit(t, db, sid, 1, pane("a", 10*hour, 1), pane("a", 12*hour, 1), pane("b", 2*day, 1))
	if got := keysAll(t, db, sid, 11*hour, 13*hour); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("before the drop: %q", got)
	}
	if err := db.DropBefore(t.Context(), sid, day); err != nil {
		t.Fatal(err)
	}
	commit(t, db, sid, 2, pane("a", 9*hour, 2), pane("a", 13*hour, 2))
	if got := keysAll(t, db, sid, 11*hour, 13*hour); len(got) != 0 {
		t.Fatalf("after the drop, panes at 9h and 13h: got %q, want none", got)
	}
	if got := keysAll(t, db, sid, 8*hour, 10*hour); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after the drop, [8h, 10h): got %q, want a", got)
	}
}

// TestKeysLateLowPane: a late pane widens a key's span downwards; ranges
// below the pane a listing remembered must still be answered from the
// panes.
func TestKeysLateLowPane(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "s", time.Minute).ID
	commit(t, db, sid, 1, pane("a", 10*hour, 1), pane("a", 12*hour, 1))
	if got := keysAll(t, db, sid, 11*hour, 13*hour); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("[11h, 13h): %q", got)
	}
	commit(t, db, sid, 2, pane("a", 8*hour, 2))
	for _, c := range []struct {
		from, to int64
		want     []string
	}{
		{7 * hour, 9 * hour, []string{"a"}},
		{9 * hour, 10 * hour, nil},
		{11 * hour, 12 * hour, nil},
		{11 * hour, 12*hour + 1, []string{"a"}},
		{12*hour + 1, 13 * hour, nil},
	} {
		if got := keysAll(t, db, sid, c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("[%dm, %dm): got %q, want %q", c.from/minute, c.to/minute, got, c.want)
		}
	}
}

// TestTierKeysMatchPanes is TestKeysMatchPanes for a rollup tier, across
// ResetTiers (the tier dropped and built again with other panes).
func TestTierKeysMatchPanes(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	info := tierStream(t, db)
	rng := rand.New(rand.NewPCG(3, 4))
	sp := tierSpace(info.ID, time.Hour)
	m := newPaneModel(sp.width)
	list := func(from, to int64) []string {
		var got []string
		err := db.TierKeys(t.Context(), info.ID, time.Hour, from, to, func(k string) error { got = append(got, k); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	write := func() {
		ps := randomPanes(rng, 20, 40)
		for i := range ps {
			ps[i].Start = floorDiv(ps[i].Start, hour) * hour
		}
		if err := db.WriteTierPanes(t.Context(), info.ID, time.Hour, ps); err != nil {
			t.Fatal(err)
		}
		m.add(ps...)
	}
	for range 5 {
		write()
		checkKeys(t, list, m, rng, 30)
	}
	if err := db.ResetTiers(t.Context(), info.ID); err != nil {
		t.Fatal(err)
	}
	m = newPaneModel(sp.width)
	checkKeys(t, list, m, rng, 30)
	for range 5 {
		write()
		checkKeys(t, list, m, rng, 30)
	}
}

// TestKeysConcurrentCommits lists random ranges while commits add panes:
// each listing holds every key committed before it began and none that no
// commit begun before it ended wrote. Run it with -race.
func TestKeysConcurrentCommits(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	info := createTest(t, db, "s", time.Minute)
	begun, done := newPaneModel(info.PartitionWidth), newPaneModel(info.PartitionWidth)
	const commits = 40
	var wg sync.WaitGroup
	running := make(chan struct{})
	wg.Go(func() {
		defer close(running)
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range commits {
			ps := randomPanes(rng, 40, 10)
			begun.add(ps...)
			f := sketchd.Flush{Panes: ps, Checkpoint: sketchd.Checkpoint{Position: uint64(i + 1)}}
			if err := db.Commit(t.Context(), info.ID, f); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
			done.add(ps...)
		}
	})
	rng := rand.New(rand.NewPCG(7, 8))
	defer wg.Wait()
	for listings := 0; ; listings++ {
		select {
		case <-running:
			t.Logf("%d listings during %d commits", listings, commits)
			return
		default:
		}
		from, to := randomRange(rng)
		before := done.keys(from, to)
		got := keysAll(t, db, info.ID, from, to)
		after := begun.keys(from, to)
		for _, k := range before {
			if !slices.Contains(got, k) {
				t.Errorf("Keys(%d, %d) misses %q, committed before", from/minute, to/minute, k)
				return
			}
		}
		for _, k := range got {
			if !slices.Contains(after, k) {
				t.Errorf("Keys(%d, %d) lists %q, which has no pane there", from/minute, to/minute, k)
				return
			}
		}
	}
}

// TestKeysAllocsIndependentOfPaneSize: listing the last hour, sliding a
// minute at a time, over keys whose spans it cuts allocates no more with
// 32 KiB panes than with 64-byte ones once a listing has seen the panes:
// the memo holds each key's newest pane in the range (23:30), which stays
// in it as the range slides past the key's older one (23:10). Checked:
// fails before the pane memo (each listing then copied about one pane
// value per key), and with a memo of the oldest pane in the range.
func TestKeysAllocsIndependentOfPaneSize(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	const keys, big, runs = 50, 32 << 10, 20
	perListing := func(name string, size int) float64 {
		sid := createTest(t, db, name, time.Minute).ID
		var ps []sketchd.PaneRecord
		for k := range keys {
			key := fmt.Sprintf("key-%02d", k)
			for i, start := range []int64{hour, 23*hour + 10*minute, 23*hour + 30*minute} {
				ps = append(ps, pane(key, start, 1, blob(uint64(k*3+i), size)))
			}
		}
		commit(t, db, sid, 1, ps...)
		list := func(slide int64) {
			from := 23*hour + slide*minute
			if got := keysAll(t, db, sid, from, from+hour); len(got) != keys {
				t.Fatalf("%s: %d keys, want %d", name, len(got), keys)
			}
		}
		list(0)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range runs {
			list(int64(i + 1))
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / runs
	}
	small := perListing("small", 64)
	large := perListing("large", big)
	t.Logf("bytes per listing: %.0f over 64-byte panes, %.0f over 32 KiB panes", small, large)
	if large-small > 2*big {
		t.Errorf("a listing allocates %.0f bytes over 32 KiB panes, %.0f over 64-byte panes: more than two panes' worth apart", large, small)
	}
}

// TestKeysIndexAhead: the key index may hold a span wider than the panes
// (a commit writes the index first and may stop there); a listing answers
// from the panes, not from the index's newest start.
func TestKeysIndexAhead(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "s", time.Minute).ID
	commit(t, db, sid, 1, pane("a", 10*hour, 1), pane("a", 12*hour, 1))
	if err := db.rawSetIndex(sid, 0, "a", encodeIndex(10*hour, 14*hour)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, to int64
		want     []string
	}{
		{13 * hour, 15 * hour, nil},
		{11 * hour, 15 * hour, []string{"a"}},
		{13 * hour, 15 * hour, nil},
		{12*hour + 1, day, nil},
	} {
		if got := keysAll(t, db, sid, c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("[%dm, %dm): got %q, want %q", c.from/minute, c.to/minute, got, c.want)
		}
	}
}

// TestPaneMemoHoldsItsBudget fills the memo with entries of dashboard-like
// keys (a pane key head of 40 to 60 bytes) up to its budget and checks
// that the live heap it holds stays within 1.4 times maxMemoBytes.
func TestPaneMemoHoldsItsBudget(t *testing.T) {
	var m paneMemo
	live := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := live()
	sp := baseSpace(1, day)
	var head []byte
	for i := 0; m.bytes < maxMemoBytes-200; i++ {
		head = sp.appendPaneKeyPrefix(head[:0], int64(i%7), fmt.Sprintf("country=%d|device=%d", i, i%13)+string(make([]byte, i%20)))
		m.add(head, 0, paneSeen{start: int64(i), version: 1})
	}
	held := live() - before
	t.Logf("%d entries, %d bytes accounted, %d bytes live", len(m.m), m.bytes, held)
	if float64(held) > 1.4*maxMemoBytes {
		t.Errorf("the memo holds %d bytes of heap, budget %d", held, maxMemoBytes)
	}
	runtime.KeepAlive(&m)
}

// TestKeyProbeMetrics: sketchd_store_key_probes_total counts a cut key's
// first listing as a seek, the same listing again as a memo answer, and
// a listing after a drop (of another partition) as a seek again.
func TestKeyProbeMetrics(t *testing.T) {
	db := openTest(t, t.TempDir(), quietOptions())
	sid := createTest(t, db, "s", time.Minute).ID
	commit(t, db, sid, 1, pane("a", 10*hour, 1), pane("a", 12*hour, 1), pane("a", 2*day, 1), pane("a", 2*day+2*hour, 1))
	want := func(memo, seek float64) {
		t.Helper()
		if m, s := testutil.ToFloat64(db.met.probeMemo), testutil.ToFloat64(db.met.probeSeek); m != memo || s != seek {
			t.Errorf("probes: memo %v seek %v, want %v %v", m, s, memo, seek)
		}
	}
	keysAll(t, db, sid, 11*hour, 13*hour)
	want(0, 1)
	keysAll(t, db, sid, 11*hour, 13*hour)
	keysAll(t, db, sid, 11*hour+30*minute, 14*hour)
	want(2, 1)
	day2 := func() {
		t.Helper()
		if got := keysAll(t, db, sid, 2*day+hour, 2*day+3*hour); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("day 2: %q", got)
		}
	}
	day2()
	want(2, 2)
	if err := db.DropBefore(t.Context(), sid, 0); err != nil { // drops nothing: the memo stays
		t.Fatal(err)
	}
	day2()
	want(3, 2)
	if err := db.DropBefore(t.Context(), sid, day); err != nil {
		t.Fatal(err)
	}
	day2()
	want(3, 3)
}
