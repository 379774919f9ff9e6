package memlimit

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sketchd/sketchd/internal/promtest"
)

const mib = 1 << 20

func TestGoLimitFor(t *testing.T) {
	o := Options{Budget: 512 * mib, GoLimit: 448 * mib}
	for _, c := range []struct{ files, want int64 }{
		{0, 448 * mib},
		{64 * mib, 448 * mib},  // the files fit in their eighth
		{100 * mib, 412 * mib}, // they take 36 MiB of the heap's
		{256 * mib, 256 * mib}, // half the budget: the least
		{400 * mib, 256 * mib},
	} {
		if got := goLimitFor(o, c.files); got != c.want {
			t.Errorf("%d MiB of files: Go limit %d MiB, want %d", c.files/mib, got/mib, c.want/mib)
		}
	}
}

func TestScaleFor(t *testing.T) {
	for _, c := range []struct {
		goLimit, live, held, budget int64
		want                        float64
	}{
		{448 * mib, 236 * mib, 88 * mib, 88 * mib, 1},                      // the load runner's query phases
		{448 * mib, 344 * mib, 88 * mib, 88 * mib, (448.0*2/3 - 256) / 88}, // its heavy ingest: 42.7 of 88 MiB
		{336 * mib, 400 * mib, 66 * mib, 66 * mib, minScale},               // nothing left for them
		{300 * mib, 100 * mib, 0, 0, 1},                                    // no caches
		{300 * mib, 150 * mib, 50 * mib, 100 * mib, 1},                     // 200 - 100 = 100: all of it
		{300 * mib, 200 * mib, 50 * mib, 100 * mib, 0.5},                   // 200 - 150 = 50
		{300 * mib, 200 * mib, 50 * mib, 1000 * mib, minScale},             // 50 of 1000
	} {
		if got := scaleFor(c.goLimit, c.live, c.held, c.budget); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("scaleFor(%d, %d, %d, %d MiB) = %v, want %v", c.goLimit/mib, c.live/mib, c.held/mib, c.budget/mib, got, c.want)
		}
	}
}

// restoreGoLimit puts the test binary's soft limit back after a test that
// sets it.
func restoreGoLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
}

// TestLimiterSteps runs the limiter's steps on readings given to it: the
// soft limit follows the file pages past their share and comes back to
// GoLimit exactly; the caches give way after a collection that found too
// much live, at once, and come back by scaleStep per collection; nothing
// changes between collections. The caches' lines are at Info once a
// minute, at Debug in between.
func TestLimiterSteps(t *testing.T) {
	restoreGoLimit(t)
	c := &heapCache{}
	var logs bytes.Buffer
	l := New(Options{Budget: 512 * mib, GoLimit: 448 * mib, Caches: c}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var set []int64
	l.setGoLimit = func(n int64) { set = append(set, n) }
	files, live, cycles := int64(30*mib), int64(200*mib), uint64(1)
	l.readFiles = func() (int64, bool) { return files, true }
	l.readHeap = func() (int64, uint64) { return live, cycles }
	c.budget, c.held = 88*mib, 88*mib

	l.step()
	if len(set) != 0 || c.scaled != nil {
		t.Fatalf("files and heap within their shares: set %v, scaled %v", set, c.scaled)
	}
	files = 100 * mib
	l.step()
	files = 100*mib + mib/2 // less than a MiB more: not set again
	l.step()
	files = 20 * mib
	l.step()
	if want := []int64{412 * mib, 448 * mib}; !slices.Equal(set, want) {
		t.Errorf("soft limits set %v, want %v", set, want)
	}

	live = 380 * mib // 292 besides the caches: 298.7 - 292 leaves them minScale
	l.step()
	if c.scaled != nil {
		t.Fatalf("scaled %v without a new collection", c.scaled)
	}
	cycles++
	l.step()
	if !equalF(c.scaled, []float64{minScale}) {
		t.Fatalf("after a collection that found 380 MiB live: scaled %v, want [%v]", c.scaled, minScale)
	}
	live, c.held = 150*mib, 11*mib
	for range 10 {
		cycles++
		l.step()
		l.step() // the same collection: nothing new
	}
	want := []float64{minScale}
	for s := minScale + scaleStep; s < 1; s += scaleStep {
		want = append(want, s)
	}
	want = append(want, 1)
	if !equalF(c.scaled, want) {
		t.Errorf("scales %v, want %v", c.scaled, want)
	}
	// Down again within the minute: both lines after the first at Debug.
	live = 380 * mib
	cycles++
	l.step()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var levels []string
	for _, line := range lines {
		levels = append(levels, strings.Fields(strings.SplitN(line, "level=", 2)[1])[0])
	}
	if len(lines) != 3 || !slices.Equal(levels, []string{"INFO", "DEBUG", "DEBUG"}) ||
		!strings.Contains(lines[0], "giving way") || !strings.Contains(lines[1], "whole budget") {
		t.Errorf("log lines (levels %v):\n%s", levels, logs.String())
	}
}

// TestCachesGiveWay runs the limiter on the test binary's own heap: a
// cache of 64 MiB fits, 128 MiB more of live heap (ballast) leaves it too
// little room, and after the next collection the limiter has it keep
// minScale of its budget, which frees its memory; once the ballast is
// gone the cache gets its whole budget back within a few collections.
// /metrics shows the scale.
func TestCachesGiveWay(t *testing.T) {
	restoreGoLimit(t)
	c := &heapCache{}
	c.fill(64 * mib)
	runtime.GC()
	live, _ := readHeap()
	others := live - c.bytes()
	goLimit := (others+c.budget+32*mib)*3/2 + 48*mib
	l := New(Options{Budget: goLimit + goLimit/7, GoLimit: goLimit, Caches: c}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.readFiles = func() (int64, bool) { return 0, false } // this test is the heap's
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.Collector())
	t.Logf("live heap %d MiB besides the cache's %d; soft limit %d MiB", others/mib, c.bytes()/mib, goLimit/mib)

	runtime.GC()
	l.step()
	if s := promtest.Value(t, reg, "sketchd_memory_cache_scale"); s != 1 {
		t.Fatalf("scale %v with room for the cache", s)
	}
	ballast := make([]byte, 128*mib)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	runtime.GC()
	l.step()
	if s := promtest.Value(t, reg, "sketchd_memory_cache_scale"); s != minScale {
		t.Fatalf("scale %v after %d MiB more live, want %v", s, len(ballast)/mib, minScale)
	}
	if b := c.bytes(); b > c.budget/8 {
		t.Fatalf("the cache holds %d MiB after giving way, over an eighth of %d", b/mib, c.budget/mib)
	}
	runtime.GC()
	if now, _ := readHeap(); now > live+int64(len(ballast))-32*mib {
		t.Errorf("live heap %d MiB with the ballast and the cache scaled down, from %d MiB before the ballast", now/mib, live/mib)
	}
	runtime.KeepAlive(ballast)
	ballast = nil
	for range 8 {
		runtime.GC()
		l.step()
	}
	if s := promtest.Value(t, reg, "sketchd_memory_cache_scale"); s != 1 {
		t.Errorf("scale %v eight collections after the ballast went", s)
	}
	if problems, err := testutil.CollectAndLint(l.Collector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestRunStops: Run steps until its context ends.
func TestRunStops(t *testing.T) {
	restoreGoLimit(t)
	l := New(Options{Budget: 1 << 40, GoLimit: 1 << 39, Interval: time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var n int
	var mu sync.Mutex
	l.readFiles = func() (int64, bool) { mu.Lock(); n++; mu.Unlock(); return 0, true }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if n == 0 {
		t.Error("Run never stepped")
	}
}

// heapCache is a cache of real heap memory for the limiter to scale: blocks
// of a MiB, dropped from the end past s of its budget.
type heapCache struct {
	mu     sync.Mutex
	blocks [][]byte
	budget int64
	held   int64 // for TestLimiterSteps, which gives the figures
	scaled []float64
}

func (c *heapCache) fill(n int64) {
	c.budget = n
	for range n / mib {
		b := make([]byte, mib)
		for i := range b {
			b[i] = 1
		}
		c.blocks = append(c.blocks, b)
	}
}

func (c *heapCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.blocks)) * mib
}

func (c *heapCache) CacheBytes() (int64, int64) {
	if c.blocks == nil {
		return c.held, c.budget
	}
	return c.bytes(), c.budget
}

func (c *heapCache) ScaleCaches(s float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scaled = append(c.scaled, s)
	if keep := int(float64(c.budget) * s / mib); keep < len(c.blocks) {
		clear(c.blocks[keep:])
		c.blocks = c.blocks[:keep]
	}
}

func equalF(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9 {
			return false
		}
	}
	return true
}
