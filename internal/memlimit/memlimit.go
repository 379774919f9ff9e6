// Package memlimit keeps the process's RSS within its memory limit
// (--memory-limit) while what takes the memory changes: the Go runtime's
// soft limit gives way to the file pages the process has resident past
// their share of the limit, and the query caches give way to the rest of
// the live heap when it leaves the garbage collector too little room.
//
// One goroutine (Run) owns the decisions; the metrics read what it last
// decided. See docs/operations.md ("Memory").
package memlimit

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/procmem"
)

// LiveShare is the part of the Go runtime's soft limit the live heap may
// take before the caches give way: the rest (a third) is the collector's
// room for garbage, which at that point lets the heap grow by half the live
// heap between cycles (GOGC 50). A choice, not a measured optimum: no
// other share was tried; what was measured is that a smaller soft limit
// (336 MiB, the load runner at a 384 MiB limit) ran the collector 2-3
// times as often and failed the latency targets (docs/operations.md).
var LiveShare = defaults.Share{Num: 2, Den: 3}

// minScale is the least of their budgets the caches keep: the hottest
// panes and windows stay cached however tight the heap.
const minScale = 1.0 / 8

// scaleStep is how far the caches' scale rises per collection once the
// heap has room again: a few seconds from the least to the whole budget,
// so that a cache refilled at once does not push the heap straight back.
const scaleStep = 1.0 / 8

// goLimitStep is the least change of the soft limit worth setting.
const goLimitStep = 1 << 20

// Caches are what can give memory back at once: the query caches
// (query.Querier).
type Caches interface {
	// CacheBytes returns what the caches hold and their budgets at scale 1.
	CacheBytes() (held, budget int64)
	// ScaleCaches keeps them within s (0 < s ≤ 1) of their budgets.
	ScaleCaches(s float64)
}

// Options configure a Limiter.
type Options struct {
	Budget  int64 // the process's memory limit: its RSS should stay within it
	GoLimit int64 // the Go runtime's soft limit while the resident file pages fit in Budget - GoLimit
	// Caches give way to the rest of the live heap; nil: none.
	Caches Caches
	// Interval is how often the limiter looks. 0 = 100 ms.
	Interval time.Duration
}

// Limiter adjusts the Go runtime's soft limit and the caches' scale.
type Limiter struct {
	opts Options
	log  *slog.Logger

	// What it reads and sets: the process's own (New); tests read their own.
	readFiles  func() (int64, bool)
	readHeap   func() (live int64, cycles uint64)
	setGoLimit func(int64)

	// Run's own: the soft limit as set, the collections seen, the last
	// line about the caches at Info.
	goLimit int64
	cycles  uint64
	logged  time.Time
	// Last seen and decided, for the metrics.
	files atomic.Int64
	scale atomic.Uint64 // float64 bits
}

// New returns a limiter of the process's own memory. Run starts it.
func New(opts Options, log *slog.Logger) *Limiter {
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	l := &Limiter{opts: opts, log: log, readFiles: procmem.ResidentFiles, readHeap: readHeap,
		setGoLimit: func(n int64) { debug.SetMemoryLimit(n) }, goLimit: opts.GoLimit}
	l.scale.Store(math.Float64bits(1))
	return l
}

// Run adjusts every Interval until ctx ends.
func (l *Limiter) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.step()
		}
	}
}

// step sets the soft limit for the file pages resident now and, after each
// collection, the caches' scale for the live heap it found.
func (l *Limiter) step() {
	if files, ok := l.readFiles(); ok {
		l.files.Store(files)
		l.adjustGoLimit(files)
	}
	live, cycles := l.readHeap()
	if cycles == l.cycles {
		return
	}
	l.cycles = cycles
	l.rescale(live)
}

func (l *Limiter) adjustGoLimit(files int64) {
	want := goLimitFor(l.opts, files)
	if d := want - l.goLimit; d >= goLimitStep || d <= -goLimitStep || (want == l.opts.GoLimit && d != 0) {
		l.setGoLimit(want)
		l.goLimit = want
	}
}

func (l *Limiter) rescale(live int64) {
	if l.opts.Caches == nil {
		return
	}
	held, budget := l.opts.Caches.CacheBytes()
	old := math.Float64frombits(l.scale.Load())
	s := scaleFor(l.goLimit, live, held, budget)
	if s > old {
		s = min(s, old+scaleStep) // rise slowly; give way at once
	}
	if s == old {
		return
	}
	l.opts.Caches.ScaleCaches(s)
	l.scale.Store(math.Float64bits(s))
	l.logTransition(old, s, live, held)
}

// logQuiet is how long after a line about the caches the next one waits
// for Info: an ingest burst can take them down and back every few seconds.
const logQuiet = time.Minute

// logTransition logs the caches giving way (from their whole budget) and
// coming back to it: at Info at most once per logQuiet, else at Debug.
func (l *Limiter) logTransition(old, s float64, live, held int64) {
	var msg string
	var attrs []any
	switch {
	case old == 1:
		msg, attrs = "query caches giving way to the rest of the heap", []any{"scale", s, "live_heap_mib", live >> 20,
			"caches_mib", held >> 20, "go_limit_mib", l.goLimit >> 20}
	case s == 1:
		msg, attrs = "query caches back to their whole budget", []any{"live_heap_mib", live >> 20}
	default:
		return
	}
	level := slog.LevelDebug
	if now := time.Now(); now.Sub(l.logged) >= logQuiet {
		level, l.logged = slog.LevelInfo, now
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

// goLimitFor is the Go runtime's soft limit with files bytes of file pages
// resident: opts.GoLimit while they fit in the rest of the budget, less
// what they take past it, but never under half the budget (file pages are
// the kernel's to reclaim; a heap squeezed further would spend the CPU on
// collections).
func goLimitFor(o Options, files int64) int64 {
	return max(min(o.GoLimit, o.Budget-files), o.Budget/2)
}

// scaleFor is the caches' scale that leaves the live heap LiveShare of the
// soft limit: what the heap holds besides the caches (live - held) is
// taken as it is, the caches get the rest, between minScale and all of
// their budget.
func scaleFor(goLimit, live, held, budget int64) float64 {
	if budget <= 0 {
		return 1
	}
	room := float64(goLimit)*LiveShare.Float() - float64(live-held)
	return min(max(room/float64(budget), minScale), 1)
}

// readHeap returns the heap the last collection found live and the
// number of collections so far (runtime/metrics).
func readHeap() (live int64, cycles uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		live = int64(s[0].Value.Uint64())
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		cycles = s[1].Value.Uint64()
	}
	return live, cycles
}
