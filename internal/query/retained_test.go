package query_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

const (
	minute = int64(time.Minute)
	hour   = int64(time.Hour)
)

// retainedStore is the black-box finding's stream in a real Badger store
// (one event a minute, 1-minute panes, a 10-minute rollup tier kept 48h),
// with the store's clock at h0 + 3h30s: an event in every minute from h0
// to h0 + 3h − 5m (no tier pane built yet: buildTier), then the stream's
// retention altered from 24h to 1h, so its own panes are kept from
// h0 + 2h on. now moves the store's clock.
type retainedStore struct {
	db     *store.DB
	target query.Target
	info   store.StreamInfo
	now    *atomic.Int64
	h0     int64
	params sketch.Params
}

func newRetainedStore(tb testing.TB) *retainedStore {
	tb.Helper()
	ctx := context.Background()
	h0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC).UnixNano()
	now := &atomic.Int64{}
	now.Store(h0 + 3*hour + 30*int64(time.Second))
	o := store.DefaultOptions()
	o.GCInterval, o.RetentionInterval = -1, -1
	o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	db, err := store.Open(tb.TempDir(), nil, nil, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "s", "in.s"
	spec.GroupBy = []string{"c"}
	spec.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "u"}}
	spec.Retention = sketchd.Duration(24 * time.Hour)
	spec.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(10 * time.Minute), Retention: sketchd.Duration(48 * time.Hour)}}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		tb.Fatal(err)
	}
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		tb.Fatal(err)
	}
	params, err := spec.Aggregates["users"].SketchParams()
	if err != nil {
		tb.Fatal(err)
	}
	s := &retainedStore{db: db, info: info, now: now, h0: h0, params: params}
	key := sketchd.EncodeKey("x")
	var panes []sketchd.PaneRecord
	for start := h0; start < h0+3*hour-5*minute; start += minute {
		panes = append(panes, sketchd.PaneRecord{Key: key, Start: start, Final: true, Events: 1, Applied: uint64(len(panes) + 1),
			Sketches: [][]byte{s.users(tb, start, start+minute)}})
	}
	cp := sketchd.Checkpoint{Position: uint64(len(panes)), MaxEventTime: now.Load(), Watermark: now.Load()}
	if err := db.Commit(ctx, info.ID, sketchd.Flush{Panes: panes, Checkpoint: cp}); err != nil {
		tb.Fatal(err)
	}
	spec.Retention = sketchd.Duration(time.Hour)
	if _, err := db.AlterStream(ctx, spec.Name, spec, sketchd.Alteration{At: time.Unix(0, now.Load()).UTC(), Changes: []string{"retention: 24h -> 1h"}}); err != nil {
		tb.Fatal(err)
	}
	s.target = query.Target{ID: info.ID, Spec: spec, Watermark: now.Load(), LastCommit: 1}
	return s
}

// users is the HLL of the users of the minutes in [from, to), encoded.
func (s *retainedStore) users(tb testing.TB, from, to int64) []byte {
	tb.Helper()
	sk, err := sketch.New(s.params)
	if err != nil {
		tb.Fatal(err)
	}
	for t := from; t < to; t += minute {
		if err := sketch.Add(sk, fmt.Appendf(nil, "u%d", (t-s.h0)/minute), 0, 0); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := sk.AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// buildTier writes the 10-minute tier's panes of [from, to) and its cursor
// at to, as the tier builder does.
func (s *retainedStore) buildTier(tb testing.TB, from, to int64) {
	tb.Helper()
	g := 10 * minute
	var tier []sketchd.PaneRecord
	for start := from; start < to; start += g {
		tier = append(tier, sketchd.PaneRecord{Key: sketchd.EncodeKey("x"), Start: start, Final: true, Events: 10,
			Applied: uint64(start), Sketches: [][]byte{s.users(tb, start, start+g)}})
	}
	if err := s.db.WriteTier(context.Background(), s.info.ID, 10*time.Minute, tier, to); err != nil {
		tb.Fatal(err)
	}
}

// span is a Span in minutes after h0, for comparisons that read.
type span struct {
	From, To, Granularity int64 // minutes after h0; minutes
	Source                string
}

func spansOf(h0 int64, res *query.Result) []span {
	var out []span
	for _, s := range res.Resolution {
		out = append(out, span{(s.From - h0) / minute, (s.To - h0) / minute, s.Granularity / minute, s.Source()})
	}
	return out
}

// TestQueryBeforeRetained is the black-box finding: with the stream's own
// panes kept 1h and its 10-minute tier 48h, an answer over an hour before
// the horizon reads the tier where it aligns and the stream's panes at the
// ragged edges, which retention has dropped. Every answer whose range
// starts before the horizon says from when the stream's panes are kept
// (RetainedFrom); the parts that neither its panes nor the tier keep are
// Expired in the resolution; a window overlapping one is Incomplete, and
// Expired when it lies wholly in them. What is read does not change (50
// events of 59 for the hour from a minute past it). Answers over a
// retained range say none of it. Before: the ragged edge was a "panes"
// part, every window complete, and nothing said the answer was short.
func TestQueryBeforeRetained(t *testing.T) {
	s := newRetainedStore(t)
	s.buildTier(t, s.h0, s.h0+2*hour)
	h0 := s.h0
	q := query.New(s.db, query.Options{})
	t.Cleanup(q.Close)
	horizon := h0 + 2*hour // now − 1h, down to its pane
	type win struct {
		events              uint64
		incomplete, expired bool
	}
	for _, c := range []struct {
		name         string
		qu           query.Query
		retainedFrom int64
		resolution   []span
		windows      []win // nil: every window as first
	}{
		{"the hour, on the tier's grid",
			query.Query{From: h0, To: h0 + hour}, horizon,
			[]span{{0, 60, 10, "rollup"}}, []win{{60, false, false}}},
		{"the hour from a minute past",
			query.Query{From: h0 + minute, To: h0 + hour}, horizon,
			[]span{{1, 10, 1, "expired"}, {10, 60, 10, "rollup"}}, []win{{50, true, false}}},
		{"the hour by 10 minutes",
			query.Query{From: h0, To: h0 + hour, Step: 10 * minute}, horizon,
			[]span{{0, 60, 10, "rollup"}}, slices.Repeat([]win{{10, false, false}}, 6)},
		{"the hour by minutes",
			query.Query{From: h0, To: h0 + hour, Step: minute}, horizon,
			[]span{{0, 60, 1, "expired"}}, slices.Repeat([]win{{0, true, true}}, 60)},
		{"the hour by 10 minutes from a minute past",
			query.Query{From: h0 + minute, To: h0 + 31*minute, Step: 10 * minute}, horizon,
			[]span{{1, 31, 1, "expired"}}, slices.Repeat([]win{{0, true, true}}, 3)},
		{"sliding across the tier's grid",
			query.Query{From: h0 + 20*minute, To: h0 + 40*minute, Step: 10 * minute, Window: 20 * minute}, horizon,
			[]span{{10, 40, 10, "rollup"}}, []win{{20, false, false}, {20, false, false}}},
		{"across the horizon by 5 minutes",
			query.Query{From: h0 + 115*minute, To: h0 + 125*minute, Step: 5 * minute}, horizon,
			[]span{{115, 120, 1, "expired"}, {120, 125, 1, "panes"}}, []win{{0, true, true}, {5, false, false}}},
		{"across the horizon whole",
			query.Query{From: h0 + 115*minute, To: h0 + 125*minute}, horizon,
			[]span{{115, 120, 1, "expired"}, {120, 125, 1, "panes"}}, []win{{5, true, false}}},
		{"from the horizon on",
			query.Query{From: horizon, To: horizon + 30*minute}, sketchd.NoTime,
			[]span{{120, 150, 1, "panes"}}, []win{{30, false, false}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.qu.Aggregate = "users"
			res, err := q.Query(t.Context(), s.target, c.qu)
			if err != nil {
				t.Fatal(err)
			}
			multi, err := q.QueryMulti(t.Context(), s.target, c.qu, []string{"users"})
			if err != nil {
				t.Fatal(err)
			}
			for name, res := range map[string]*query.Result{"Query": res, "QueryMulti": multi[0]} {
				if res.RetainedFrom != c.retainedFrom {
					t.Errorf("%s: RetainedFrom %d, want %d", name, res.RetainedFrom, c.retainedFrom)
				}
				if got := spansOf(h0, res); !slices.Equal(got, c.resolution) {
					t.Errorf("%s: resolution %+v, want %+v", name, got, c.resolution)
				}
				if len(res.Groups) != 1 {
					t.Fatalf("%s: %d groups", name, len(res.Groups))
				}
				var got []win
				for _, w := range res.Groups[0].Windows {
					got = append(got, win{w.Events, w.Incomplete, w.Expired})
				}
				if !slices.Equal(got, c.windows) {
					t.Errorf("%s: windows (events, incomplete, expired) %v, want %v", name, got, c.windows)
				}
			}
		})
	}

	// 46 hours on, the tier's own retention (48h) has passed its first
	// hour: a part the planner gives the tier is Expired too.
	s.now.Add(46 * hour)
	res, err := q.Query(t.Context(), s.target, query.Query{Aggregate: "users", From: h0, To: h0 + 2*hour, Step: 30 * minute})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := spansOf(h0, res), []span{{0, 60, 10, "expired"}, {60, 120, 10, "rollup"}}; !slices.Equal(got, want) {
		t.Errorf("46h on: resolution %+v, want %+v", got, want)
	}
	for i, w := range res.Groups[0].Windows {
		if old := i < 2; w.Incomplete != old || w.Expired != old {
			t.Errorf("46h on: window %d incomplete %t expired %t, want %t", i, w.Incomplete, w.Expired, old)
		}
	}
	if want := h0 + 48*hour; res.RetainedFrom != want {
		t.Errorf("46h on: RetainedFrom %d, want %d", res.RetainedFrom, want)
	}
}

// TestRetainedHorizonMovesAnswers: the horizon moves with the clock, not
// with a commit. An answer computed while its range was retained is not
// served from the result cache once the horizon has passed its start: at
// the same commit, the same question then says so (and reads what is left).
// The answer key (the API caches rendered answers under it) moves with it;
// that of a range still retained does not. Before: the result cache
// answered as at the first asking until the next commit.
func TestRetainedHorizonMovesAnswers(t *testing.T) {
	s := newRetainedStore(t)
	h0 := s.h0
	// The result cache only: the window and pane caches would answer the
	// final window, or its panes, as they read them before the move (see
	// docs/api.md: what they hold is not read again).
	q := query.New(s.db, query.Options{WindowCacheBytes: -1, CacheBytes: -1})
	t.Cleanup(q.Close)
	moving := query.Query{Aggregate: "users", From: h0 + 130*minute, To: h0 + 140*minute}
	still := query.Query{Aggregate: "users", From: h0 + 160*minute, To: h0 + 170*minute}
	ask := func(qu query.Query) (*query.Result, string) {
		t.Helper()
		res, err := q.Query(t.Context(), s.target, qu)
		if err != nil {
			t.Fatal(err)
		}
		k, ok := q.AnswerKey(s.target, qu)
		if !ok {
			t.Fatal("no answer key")
		}
		return res, k
	}
	before, keyBefore := ask(moving)
	_, stillBefore := ask(still)
	if w := before.Groups[0].Windows[0]; before.RetainedFrom != sketchd.NoTime || w.Incomplete || w.Events != 10 {
		t.Fatalf("before the move: RetainedFrom %d, window %+v: want a retained answer of 10 events", before.RetainedFrom, w)
	}
	s.now.Add(15 * minute) // the horizon: h0 + 2h15m
	after, keyAfter := ask(moving)
	if keyAfter == keyBefore {
		t.Error("the answer key did not move with the horizon")
	}
	if _, k := ask(still); k != stillBefore {
		t.Error("the answer key of a range still retained moved with the clock")
	}
	w := after.Groups[0].Windows[0]
	if after.RetainedFrom != h0+135*minute || !w.Incomplete || w.Expired || w.Events != 5 {
		t.Errorf("after the move: RetainedFrom %d (want %d), window %+v: want incomplete, 5 events", after.RetainedFrom, h0+135*minute, w)
	}
	if got, want := spansOf(h0, after), []span{{130, 135, 1, "expired"}, {135, 140, 1, "panes"}}; !slices.Equal(got, want) {
		t.Errorf("after the move: resolution %+v, want %+v", got, want)
	}
}

// TestTierCursorMoveKeysAnswers: the tier builder moves a tier's cursor
// between two commits; an answer cached before the move is not served
// after it: the same question at the same commit then names the tier for
// the part it serves now. Before: the result cache (and the API's answer
// cache, under the same key) answered with the resolution of before the
// move until the next commit (found by black-box testing after an import
// had lowered a cursor and the tier was rebuilt).
func TestTierCursorMoveKeysAnswers(t *testing.T) {
	s := newRetainedStore(t)
	h0 := s.h0
	s.buildTier(t, h0+2*hour, h0+2*hour+20*minute)
	q := query.New(s.db, query.Options{})
	t.Cleanup(q.Close)
	qu := query.Query{Aggregate: "users", From: h0 + 2*hour, To: h0 + 2*hour + 40*minute, Step: 10 * minute}
	res, err := q.Query(t.Context(), s.target, qu)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := q.AnswerKey(s.target, qu)
	if got, want := spansOf(h0, res), []span{{120, 140, 10, "rollup"}, {140, 160, 1, "panes"}}; !slices.Equal(got, want) {
		t.Fatalf("before the tier moves: resolution %+v, want %+v", got, want)
	}
	s.buildTier(t, h0+2*hour+20*minute, h0+2*hour+40*minute) // no commit
	res, err = q.Query(t.Context(), s.target, qu)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := spansOf(h0, res), []span{{120, 160, 10, "rollup"}}; !slices.Equal(got, want) {
		t.Errorf("after the tier moved: resolution %+v, want %+v", got, want)
	}
	if k, _ := q.AnswerKey(s.target, qu); k == key {
		t.Error("the answer key did not move with the tier's cursor")
	}
	for i, w := range res.Groups[0].Windows {
		if w.Events != 10 || w.Incomplete {
			t.Errorf("window %d: %+v, want 10 events, complete", i, w)
		}
	}
}
