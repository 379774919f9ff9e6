package window

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/sketch"
)

// memStore is the in-memory store of panetest with the store's commit
// semantics on top: records replace records, the checkpoint is written last.
type memStore struct {
	*panetest.Store
	cp sketchd.Checkpoint
}

func newMemStore() *memStore { return &memStore{Store: panetest.NewStore()} }

func (m *memStore) commit(s *sketchd.Flush, panesOnly bool) {
	m.Put(s.Panes...)
	if !panesOnly {
		m.cp = s.Checkpoint
	}
}

// panes returns every stored record by key and start.
func (m *memStore) panes() map[paneKey]sketchd.PaneRecord {
	out := map[paneKey]sketchd.PaneRecord{}
	for _, r := range m.All() {
		out[paneKey{r.Key, r.Start}] = r
	}
	return out
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func newAgg(tb testing.TB, spec sketchd.Stream, cp sketchd.Checkpoint, st *memStore, opts Options) *Aggregator {
	tb.Helper()
	a, err := NewAggregator(spec, cp, t0.UnixNano(), st, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	return a
}

func process(tb testing.TB, a *Aggregator, now time.Time, pos uint64, evs ...sketchd.Event) []Rejection {
	tb.Helper()
	var b Batch
	b.Now, b.Position = now.UnixNano(), pos
	for i := range evs {
		b.Add(&evs[i])
	}
	rej, err := a.Process(context.Background(), &b)
	if err != nil {
		tb.Fatal(err)
	}
	return rej
}

func flush(tb testing.TB, a *Aggregator, st *memStore) *sketchd.Flush {
	tb.Helper()
	s, err := a.Flush(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	st.commit(s, false)
	a.Committed(s)
	return s
}

func TestPaneStart(t *testing.T) {
	m := int64(time.Minute)
	tests := []struct {
		t, want int64
	}{
		{0, 0},
		{1, 0},
		{m - 1, 0},
		{m, m},
		{m + 1, m},
		{-1, -m},
		{-m, -m},
		{-m - 1, -2 * m},
		{math.MinInt64 + 5, math.MinInt64 + 5 - (math.MinInt64+5)%m - m},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.t, 10), func(t *testing.T) {
			if got := paneStart(tt.t, m); got != tt.want {
				t.Errorf("paneStart(%d) = %d, want %d", tt.t, got, tt.want)
			}
			if got := sketchd.PaneStart(tt.t, m); got != tt.want {
				t.Errorf("sketchd.PaneStart(%d) = %d, want %d", tt.t, got, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	spec := panetest.Spec(t)
	pl, err := compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	wm := t0.Add(5 * time.Minute).UnixNano() // watermark 10:05
	now := t0.Add(5 * time.Minute).UnixNano()
	tests := []struct {
		name string
		at   time.Time
		want class
	}{
		{"ahead of watermark", t0.Add(6 * time.Minute), onTime},
		{"pane still open", t0.Add(5*time.Minute + 30*time.Second), onTime},
		{"pane ended exactly at watermark", t0.Add(4*time.Minute + 59*time.Second), late},
		{"within lateness", t0.Add(4 * time.Minute), late},
		{"pane end + lateness == watermark", t0.Add(3*time.Minute + 59*time.Second), tooLate},
		{"long ago", t0.Add(-time.Hour), tooLate},
		{"pre-1970", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), tooLate},
		{"max future exactly", time.Unix(0, now).Add(time.Hour), onTime},
		{"beyond max future", time.Unix(0, now).Add(time.Hour + 1), future},
	}
	// A fresh stream has no watermark: only the retention (168h) stops old
	// events.
	fresh := []struct {
		name string
		at   time.Time
		want class
	}{
		{"fresh: an hour ago", t0.Add(-time.Hour), onTime},
		{"fresh: pane ends exactly retention ago", time.Unix(0, now).Add(-spec.Retention.Std() - time.Minute), tooLate},
		{"fresh: pane ends a minute inside retention", time.Unix(0, now).Add(-spec.Retention.Std()), onTime},
		{"fresh: 1970", time.Unix(1, 0), tooLate},
		{"fresh: pre-1970", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), tooLate},
	}
	for _, tt := range fresh {
		t.Run(tt.name, func(t *testing.T) {
			c := clock{maxEvent: math.MinInt64, wm: math.MinInt64}
			if got, _ := pl.classify(&c, tt.at.UnixNano(), now); got != tt.want {
				t.Errorf("class = %s, want %s", got, tt.want)
			}
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clock{maxEvent: wm + pl.ooo, wm: wm}
			got, start := pl.classify(&c, tt.at.UnixNano(), now)
			if got != tt.want {
				t.Errorf("class = %s, want %s", got, tt.want)
			}
			if want := sketchd.PaneStart(tt.at.UnixNano(), pl.granule); start != want {
				t.Errorf("start = %d, want %d", start, want)
			}
		})
	}
}

func TestWatermarkIdle(t *testing.T) {
	pl, err := compile(panetest.Spec(t))
	if err != nil {
		t.Fatal(err)
	}
	c := clock{maxEvent: sketchd.NoTime, wm: sketchd.NoTime, lastArrival: 0}
	if pl.idleAdvance(&c, int64(time.Hour)) {
		t.Fatal("idle advance before any event")
	}
	now := t0.UnixNano()
	pl.observe(&c, t0.UnixNano(), now)
	if want := t0.Add(-10 * time.Second).UnixNano(); c.wm != want {
		t.Fatalf("wm = %d, want %d", c.wm, want)
	}
	if pl.idleAdvance(&c, now+int64(29*time.Second)) {
		t.Fatal("advanced before the idle timeout")
	}
	if !pl.idleAdvance(&c, now+int64(45*time.Second)) {
		t.Fatal("no advance after the idle timeout")
	}
	if want := t0.Add(35 * time.Second).UnixNano(); c.wm != want {
		t.Fatalf("idle wm = %s, want %s", time.Unix(0, c.wm).UTC(), time.Unix(0, want).UTC())
	}
	// An older event does not move the watermark back.
	pl.observe(&c, t0.Add(-time.Hour).UnixNano(), now+int64(46*time.Second))
	if want := t0.Add(35 * time.Second).UnixNano(); c.wm != want {
		t.Fatalf("watermark moved backwards to %d", c.wm)
	}
}

// TestAccounting feeds a long random stream with disorder, late and future
// events and checks that every event is counted exactly once and every
// applied event lands in exactly one pane.
func TestAccounting(t *testing.T) {
	spec := panetest.Spec(t)
	st := newMemStore()
	a := newAgg(t, spec, sketchd.Checkpoint{}, st, Options{Shards: 3, QueueLen: 4})
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{sketchd.EncodeKey("DE", "ios"), sketchd.EncodeKey("FR", "web"), sketchd.EncodeKey("US", "android")}
	var rejected, total int
	lastWM := int64(sketchd.NoTime)
	now := t0
	pos := uint64(0)
	for i := range 200 {
		var evs []sketchd.Event
		for range 50 {
			pos++
			at := now.Add(-time.Duration(rng.IntN(int(3 * time.Minute))))
			if rng.IntN(100) == 0 {
				at = now.Add(2 * time.Hour) // future
			}
			evs = append(evs, panetest.Event(keys[rng.IntN(len(keys))], at, sketchd.Position(pos, 0), fmt.Sprint("u", rng.IntN(1000))))
		}
		total += len(evs)
		rejected += len(process(t, a, now, sketchd.Position(pos, 0), evs...))
		now = now.Add(time.Second)
		if i%17 == 0 {
			flush(t, a, st)
		}
		if wm := a.Stats().Watermark; wm < lastWM {
			t.Fatalf("watermark moved backwards: %d < %d", wm, lastWM)
		} else {
			lastWM = wm
		}
	}
	flush(t, a, st)
	c := a.Stats().Counters
	if got := c.OnTime + c.Late + c.TooLate + c.Future; got != uint64(total) {
		t.Fatalf("counted %d events, sent %d (%+v)", got, total, c)
	}
	if got := c.TooLate + c.Future; got != uint64(rejected) {
		t.Fatalf("rejections %d, counters say %d", rejected, got)
	}
	if c.Late == 0 || c.TooLate == 0 || c.Future == 0 {
		t.Fatalf("test data did not exercise every class: %+v", c)
	}
	var inPanes uint64
	for _, r := range st.panes() {
		inPanes += r.Events
	}
	if inPanes != c.OnTime+c.Late {
		t.Fatalf("panes hold %d events, %d were applied", inPanes, c.OnTime+c.Late)
	}
}

// TestShuffledEqualsSorted: disorder within the out-of-orderness bound
// changes nothing: no event is late and the panes count the same events
// and the same distinct users.
func TestShuffledEqualsSorted(t *testing.T) {
	spec := panetest.Spec(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var evs []sketchd.Event
	for i := range 5000 {
		at := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		evs = append(evs, panetest.Event(sketchd.EncodeKey("DE", []string{"ios", "web"}[i%2]), at, 0, fmt.Sprint("u", rng.IntN(3000))))
	}
	run := func(evs []sketchd.Event) (map[paneKey]sketchd.PaneRecord, sketchd.Counters) {
		st := newMemStore()
		a := newAgg(t, spec, sketchd.Checkpoint{}, st, Options{Shards: 2})
		for i := 0; i < len(evs); i += 100 {
			chunk := evs[i:min(i+100, len(evs))]
			process(t, a, time.Unix(0, chunk[len(chunk)-1].Time), 0, chunk...)
		}
		if err := a.Tick(context.Background(), t0.Add(time.Hour).UnixNano()); err != nil {
			t.Fatal(err)
		}
		flush(t, a, st)
		return st.panes(), a.Stats().Counters
	}
	sorted, cs := run(evs)
	shuffled := slices.Clone(evs)
	// Shuffle within windows of 8s: less than the 10s bound.
	for i := 0; i < len(shuffled); i += 160 {
		w := shuffled[i:min(i+160, len(shuffled))]
		rng.Shuffle(len(w), func(a, b int) { w[a], w[b] = w[b], w[a] })
	}
	got, cg := run(shuffled)
	if cg.Late != 0 || cg.TooLate != 0 || cs.Late != 0 || cs.TooLate != 0 {
		t.Fatalf("late events within the bound: sorted %+v shuffled %+v", cs, cg)
	}
	if len(got) != len(sorted) {
		t.Fatalf("%d panes, want %d", len(got), len(sorted))
	}
	for k, want := range sorted {
		r := got[k]
		if !r.Final || !want.Final {
			t.Errorf("pane %v not final after the idle advance", k)
		}
		if r.Events != want.Events {
			t.Errorf("pane %v: %d events, want %d", k, r.Events, want.Events)
		}
		hg, hw := decodeHLL(t, r.Sketches[3]), decodeHLL(t, want.Sketches[3])
		if hg.Estimate().Estimate != hw.Estimate().Estimate {
			t.Errorf("pane %v: distinct %v, want %v", k, hg.Estimate(), hw.Estimate())
		}
	}
}

func decodeHLL(tb testing.TB, b []byte) *sketch.HLL {
	tb.Helper()
	s, err := sketch.Decode(b)
	if err != nil {
		tb.Fatal(err)
	}
	h, ok := s.(*sketch.HLL)
	if !ok {
		tb.Fatalf("decoded %T, want *sketch.HLL", s)
	}
	return h
}

func TestFutureAndTooLateRejections(t *testing.T) {
	spec := panetest.Spec(t)
	st := newMemStore()
	a := newAgg(t, spec, sketchd.Checkpoint{}, st, Options{Shards: 1})
	k := sketchd.EncodeKey("DE", "ios")
	process(t, a, t0, 0, panetest.Event(k, t0.Add(10*time.Minute), 0, "a")) // watermark 10:09:50
	rej := process(t, a, t0, 0,
		panetest.Event(k, t0.Add(3*time.Hour), 0, "future"),
		panetest.Event(k, t0, 0, "too-late"),
		panetest.Event(k, t0.Add(8*time.Minute+10*time.Second), 0, "late"),
	)
	want := []Rejection{{Index: 0, Reason: "future"}, {Index: 1, Reason: "too_late"}}
	if !slices.Equal(rej, want) {
		t.Fatalf("rejections %v, want %v", rej, want)
	}
	c := a.Stats().Counters
	if c.Future != 1 || c.TooLate != 1 || c.Late != 1 || c.OnTime != 1 {
		t.Fatalf("counters %+v", c)
	}
	if wm := a.Stats().Watermark; wm != t0.Add(9*time.Minute+50*time.Second).UnixNano() {
		t.Fatalf("a future event moved the watermark to %s", time.Unix(0, wm).UTC())
	}
}

// TestReplayAfterPartialFlush: a crash after a flush wrote its panes but not
// its checkpoint, then a replay from the checkpoint, counts every event
// exactly once.
func TestReplayAfterPartialFlush(t *testing.T) {
	spec := panetest.Spec(t)
	spec.AllowedLateness = sketchd.Duration(time.Hour)
	st := newMemStore()
	keys := []string{sketchd.EncodeKey("DE", "ios"), sketchd.EncodeKey("FR", "web")}
	rng := rand.New(rand.NewPCG(5, 6))
	type msg struct {
		seq uint64
		evs []sketchd.Event
	}
	var msgs []msg
	for seq := uint64(1); seq <= 300; seq++ {
		var evs []sketchd.Event
		for i := range 3 {
			at := t0.Add(time.Duration(seq) * time.Second)
			evs = append(evs, panetest.Event(keys[rng.IntN(2)], at, sketchd.Position(seq, i), fmt.Sprint("u", rng.IntN(50))))
		}
		msgs = append(msgs, msg{seq, evs})
	}
	feed := func(a *Aggregator, from, to int) {
		for _, m := range msgs[from:to] {
			process(t, a, t0.Add(time.Duration(m.seq)*time.Second), sketchd.Position(m.seq, 2), m.evs...)
		}
	}
	// Uninterrupted run for reference.
	ref := newMemStore()
	ra := newAgg(t, spec, sketchd.Checkpoint{}, ref, Options{Shards: 2})
	feed(ra, 0, len(msgs))
	flush(t, ra, ref)

	// Crashing run: checkpoint at 100, panes-only flush at 200, crash at 250.
	a := newAgg(t, spec, sketchd.Checkpoint{}, st, Options{Shards: 2})
	feed(a, 0, 100)
	flush(t, a, st)
	feed(a, 100, 200)
	s, err := a.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.commit(s, true) // the checkpoint never landed
	feed(a, 200, 250)
	a.Close()

	// Restart from the stored checkpoint; JetStream redelivers from 101.
	b := newAgg(t, spec, st.cp, st, Options{Shards: 2})
	feed(b, 50, len(msgs)) // includes redeliveries at or below the checkpoint
	flush(t, b, st)

	if len(st.panes()) != len(ref.panes()) {
		t.Fatalf("%d panes, want %d", len(st.panes()), len(ref.panes()))
	}
	stored := st.panes()
	for k, want := range ref.panes() {
		got := stored[k]
		if got.Events != want.Events || got.Applied != want.Applied {
			t.Errorf("pane %v: events %d applied %d, want %d and %d", k, got.Events, got.Applied, want.Events, want.Applied)
		}
		for i := range want.Sketches {
			assertSameSketch(t, got.Sketches[i], want.Sketches[i])
		}
	}
	cg, cw := b.Stats().Counters, ra.Stats().Counters
	if cg.OnTime+cg.Late != cw.OnTime+cw.Late {
		t.Errorf("applied counters %+v, want %+v", cg, cw)
	}
	if cg.Skipped == 0 {
		t.Error("no replayed event was skipped: the test did not exercise the partial flush")
	}
}

// assertSameSketch compares two encoded sketches by their answers (HLL
// encodings are not canonical) and, for the others, their bytes.
func assertSameSketch(tb testing.TB, got, want []byte) {
	tb.Helper()
	g, err := sketch.Decode(got)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := sketch.Decode(want)
	if err != nil {
		tb.Fatal(err)
	}
	if h, ok := g.(*sketch.HLL); ok {
		if h.Estimate() != w.(*sketch.HLL).Estimate() {
			tb.Errorf("hll %v, want %v", h.Estimate(), w.(*sketch.HLL).Estimate())
		}
		return
	}
	gb, _ := g.AppendBinary(nil)
	wb, _ := w.AppendBinary(nil)
	if string(gb) != string(wb) {
		tb.Errorf("%s sketch differs from the uninterrupted run's", g.Kind())
	}
}

// TestEvictionReloads: with a tiny open-pane cap, panes are evicted early,
// and later events for them are added to the evicted state.
func TestEvictionReloads(t *testing.T) {
	spec := panetest.Spec(t)
	spec.AllowedLateness = sketchd.Duration(24 * time.Hour)
	st := newMemStore()
	a := newAgg(t, spec, sketchd.Checkpoint{}, st, Options{Shards: 1, MaxOpenPanes: 10})
	want := map[paneKey]uint64{}
	for round := range 3 {
		for i := range 40 {
			k := sketchd.EncodeKey("DE", strconv.Itoa(i))
			at := t0.Add(time.Duration(i%4) * time.Minute)
			process(t, a, t0, 0, panetest.Event(k, at, 0, "u"))
			want[paneKey{k, sketchd.PaneStart(at.UnixNano(), int64(time.Minute))}]++
		}
		if round == 1 {
			flush(t, a, st)
		}
	}
	flush(t, a, st)
	if a.Stats().EvictedEarly == 0 {
		t.Fatal("nothing was evicted")
	}
	if open := a.Stats().OpenPanes; open > 10 {
		t.Fatalf("%d panes open, cap 10", open)
	}
	stored := st.panes()
	for k, n := range want {
		if got := stored[k].Events; got != n {
			t.Errorf("pane %q@%d: %d events, want %d", k.key, k.start, got, n)
		}
	}
}
