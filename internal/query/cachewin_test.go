package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
)

// live is a stream being ingested into a real Badger store by a real
// Aggregator, a minute at a time, each minute committed: what a dashboard
// queries while ingesting.
type live struct {
	db     *store.DB
	agg    *window.Aggregator
	target Target
	rng    *rand.Rand
	keys   []string
	minute int // minutes ingested
	pos    uint64
	base   time.Time
	// late: each minute also gets events up to this many minutes late
	// (within the spec's allowed lateness, so that open panes before the
	// last one change too).
	late    int
	commits int64 // Target.LastCommit: one per commit
	// events and users, when set, are the most events a key gets in a
	// minute (spread over the minute; 20 a second apart when zero) and
	// the distinct users they draw from (300 when zero).
	events, users int
}

func newLive(tb testing.TB, seed uint64, keys int) *live {
	tb.Helper()
	return newLiveSpec(tb, seed, keys, nil)
}

// newLiveSpec is newLive with the fixture's spec changed by edit (nil: as
// it is).
func newLiveSpec(tb testing.TB, seed uint64, keys int, edit func(*sketchd.Stream)) *live {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(tb.TempDir(), nil, nil, store.Options{RetentionInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	spec := panetest.Spec(tb)
	if edit != nil {
		edit(&spec)
	}
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		tb.Fatal(err)
	}
	base := time.Now().Truncate(time.Hour).Add(-6 * time.Hour)
	a, err := window.NewAggregator(spec, sketchd.Checkpoint{}, base.UnixNano(), paneLoader{db, info.ID}, window.Options{Shards: 2})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	l := &live{db: db, agg: a, target: Target{ID: info.ID, Spec: spec}, rng: rand.New(rand.NewPCG(seed, 7)), base: base}
	for k := range keys {
		l.keys = append(l.keys, sketchd.EncodeKey([]string{"DE", "FR", "US"}[k%3], fmt.Sprintf("d%d", k)))
	}
	return l
}

// ingest applies one more minute of events (some keys skip it) and
// commits, moving the target's watermark and last commit.
func (l *live) ingest(tb testing.TB) {
	tb.Helper()
	m := l.base.Add(time.Duration(l.minute) * time.Minute)
	var b window.Batch
	for _, key := range l.keys {
		if l.rng.IntN(5) == 0 {
			continue
		}
		events, users, apart := 20, 300, time.Second
		if l.events > 0 {
			events, apart = l.events, time.Minute/time.Duration(l.events)
		}
		if l.users > 0 {
			users = l.users
		}
		for i := range 1 + l.rng.IntN(events) {
			l.pos++
			at := m.Add(time.Duration(i) * apart)
			if l.late > 0 && l.rng.IntN(3) == 0 {
				at = at.Add(-time.Duration(1+l.rng.IntN(l.late)) * time.Minute)
			}
			e := panetest.Event(key, at, l.pos, fmt.Sprint("u", l.rng.IntN(users)))
			e.Values[0].Num = l.rng.ExpFloat64() * 100
			b.Add(&e)
		}
	}
	b.Now, b.Position = m.Add(time.Minute).UnixNano(), l.pos
	l.commit(tb, &b)
	l.minute++
}

// commit processes b, flushes and commits the aggregator's panes, and
// moves the target to the commit (its watermark and last commit).
func (l *live) commit(tb testing.TB, b *window.Batch) {
	tb.Helper()
	ctx := context.Background()
	if _, err := l.agg.Process(ctx, b); err != nil {
		tb.Fatal(err)
	}
	snap, err := l.agg.Flush(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.db.Commit(ctx, l.target.ID, sketchd.Flush{Panes: snap.Panes, Checkpoint: snap.Checkpoint}); err != nil {
		tb.Fatal(err)
	}
	l.agg.Committed(snap)
	l.target.Watermark = snap.Checkpoint.Watermark
	l.commits++
	l.target.LastCommit = l.commits
}

// ingestOpen applies late events to the panes still open (within the
// last `late` minutes, not moving the watermark) and commits: a commit
// within the minute, as a stream flushing every second makes.
func (l *live) ingestOpen(tb testing.TB) {
	tb.Helper()
	now := l.base.Add(time.Duration(l.minute) * time.Minute)
	var b window.Batch
	for _, key := range l.keys {
		if l.rng.IntN(2) == 0 {
			continue
		}
		l.pos++
		// Before the last minute's latest event (its 20th second), so that
		// the watermark stays.
		back := time.Duration(1+l.rng.IntN(max(l.late-1, 1))) * time.Minute
		at := now.Add(-back).Add(time.Duration(l.rng.IntN(15)) * time.Second)
		e := panetest.Event(key, at, l.pos, fmt.Sprint("u", l.rng.IntN(300)))
		e.Values[0].Num = l.rng.ExpFloat64() * 100
		b.Add(&e)
	}
	b.Now, b.Position = now.UnixNano(), l.pos
	wm := l.target.Watermark
	l.commit(tb, &b)
	if l.target.Watermark != wm {
		tb.Fatalf("a commit within the minute moved the watermark %d -> %d", wm, l.target.Watermark)
	}
}

// now is the end of the minutes ingested.
func (l *live) now() int64 { return l.base.Add(time.Duration(l.minute) * time.Minute).UnixNano() }

// openSlots counts the pane slots of [from, to) that are not final at
// watermark wm.
func (l *live) openSlots(from, to, wm int64) int {
	n := 0
	for s := from; s < to; s += int64(time.Minute) {
		if !l.target.Spec.PaneFinalAt(s, wm) {
			n++
		}
	}
	return n
}

type paneLoader struct {
	db *store.DB
	id uint32
}

func (p paneLoader) Pane(ctx context.Context, key string, start int64) (sketchd.PaneRecord, bool, error) {
	return p.db.Pane(ctx, p.id, key, start)
}

// TestWindowCacheWhileCommitting is a dashboard over a stream being
// ingested (seeded; real Aggregator, real Badger, a commit every minute):
// after each commit it repeats its queries over the last 30 minutes. Every
// answer equals that of a querier without any cache (every window's
// events, panes and finality exactly, sketches as sameAnswer reads them),
// and a series of one- or five-minute steps decodes, and reads from the
// store, only the panes that were not final at the previous commit (open
// then: open now, or final since): the windows final before come from the
// window cache, the final panes of the others from the pane cache.
func TestWindowCacheWhileCommitting(t *testing.T) {
	const seed = 20261205
	t.Logf("seed %d", seed)
	l := newLive(t, seed, 12)
	reads := &countingReader{PaneReader: l.db}
	cachedQ := New(reads, Options{})
	plain := New(l.db, Options{CacheBytes: -1, ResultEntries: -1, WindowCacheBytes: -1})
	m := int64(time.Minute)
	for range 30 {
		l.ingest(t)
	}
	for round := range 40 {
		prevWM := l.target.Watermark
		l.ingest(t)
		to := l.now()
		from := to - 30*m
		queries := []struct {
			name string
			qu   Query
		}{
			{"1m by country", Query{From: from, To: to, Step: m, GroupBy: []string{"country"}}},
			{"1m DE", Query{From: from, To: to, Step: m, Where: map[string][]string{"country": {"DE"}}}},
			{"5m by device", Query{From: from, To: to, Step: 5 * m, GroupBy: []string{"device"}}},
			{"15m all", Query{From: from - 15*m, To: to, Step: 15 * m}},
			{"sliding 5m/1m", Query{From: from, To: to, Step: m, Window: 5 * m, GroupBy: []string{"country"}}},
			{"whole", Query{From: from, To: to, GroupBy: []string{"country"}}},
		}
		for _, qc := range queries {
			for _, agg := range []string{"users", "urls", "latency", "sample"} {
				qu := qc.qu
				qu.Aggregate = agg
				d0, r0 := cachedQ.Stats().Decoded, reads.panes
				got, err := cachedQ.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatal(err)
				}
				decoded, read := cachedQ.Stats().Decoded-d0, reads.panes-r0
				want, err := plain.Query(t.Context(), l.target, qu)
				if err != nil {
					t.Fatal(err)
				}
				at := fmt.Sprintf("round %d %s %s", round, qc.name, agg)
				sameResult(t, at, got, want)
				if round > 0 && (qu.Step == m || qu.Step == 5*m) && qu.Window == 0 {
					open := l.openSlots(from, to, prevWM) * len(l.keys)
					if decoded > int64(open) {
						t.Fatalf("%s: decoded %d sketches, more than the %d panes not final at the previous commit", at, decoded, open)
					}
					if read > open {
						t.Fatalf("%s: read %d panes from the store, more than the %d not final at the previous commit", at, read, open)
					}
					if round == 39 && agg == "users" {
						t.Logf("%s: decoded %d sketches (%d panes were open at the previous commit, %d slots in range)", at, decoded, open, 30*len(l.keys))
					}
				}
			}
		}
	}
}

// countingReader is a real store that counts the panes its scans deliver.
type countingReader struct {
	PaneReader
	panes int // not synchronized: the test queries one at a time
}

func (c *countingReader) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	return c.PaneReader.ScanPanes(ctx, id, keys, from, to, func(r sketchd.PaneRecord) error {
		c.panes++
		return fn(r)
	})
}

// sameResult compares two results of the same query window by window.
func sameResult(t *testing.T, at string, got, want *Result) {
	t.Helper()
	if got.Keys != want.Keys || got.Panes != want.Panes || got.From != want.From || got.To != want.To || len(got.Groups) != len(want.Groups) {
		t.Fatalf("%s: keys %d panes %d [%d,%d) groups %d, want %d %d [%d,%d) %d", at,
			got.Keys, got.Panes, got.From, got.To, len(got.Groups), want.Keys, want.Panes, want.From, want.To, len(want.Groups))
	}
	if !slices.Equal(got.Resolution, want.Resolution) {
		t.Fatalf("%s: resolution %+v, want %+v", at, got.Resolution, want.Resolution)
	}
	for gi, wg := range want.Groups {
		gg := got.Groups[gi]
		if fmt.Sprint(gg.Key) != fmt.Sprint(wg.Key) || len(gg.Windows) != len(wg.Windows) {
			t.Fatalf("%s: group %d is %v with %d windows, want %v with %d", at, gi, gg.Key, len(gg.Windows), wg.Key, len(wg.Windows))
		}
		for i, ww := range wg.Windows {
			gw := gg.Windows[i]
			wat := fmt.Sprintf("%s group %v window %d", at, wg.Key, i)
			if gw.Start != ww.Start || gw.End != ww.End || gw.Final != ww.Final || gw.Events != ww.Events || gw.Panes != ww.Panes {
				t.Fatalf("%s: %+v, want %+v", wat, gw, ww)
			}
			sameAnswer(t, wat, gw.Sketch, ww.Sketch)
		}
	}
}
