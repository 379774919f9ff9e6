package query_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// tierStore commits, to a real Badger store, a stream grouped by country
// with an HLL of users, 1-minute panes and a 1-hour rollup tier: for each
// of keys countries and hours hours from start, three panes (minutes 0,
// 17 and 41) of two users each, and the tier pane of each key and hour,
// the merge of its three (as the tier builder writes it), with the
// tier's cursor after the last hour.
func tierStore(tb testing.TB, keys, hours int) (*store.DB, query.Target, int64) {
	tb.Helper()
	return tierStoreMinutes(tb, keys, hours, []int64{0, 17, 41})
}

// tierStoreMinutes is tierStore with a pane at each of minutes in every
// hour.
func tierStoreMinutes(tb testing.TB, keys, hours int, minutes []int64) (*store.DB, query.Target, int64) {
	tb.Helper()
	ctx := context.Background()
	db := openBadger(tb)
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "tiered", "events.tiered"
	spec.GroupBy = []string{"country"}
	spec.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "user"}}
	spec.Retention = sketchd.Duration(90 * 24 * time.Hour)
	spec.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(time.Hour)}}
	spec.Normalize()
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		tb.Fatal(err)
	}
	params, err := spec.Aggregates["users"].SketchParams()
	if err != nil {
		tb.Fatal(err)
	}
	hour := int64(time.Hour)
	start := time.Now().Truncate(time.Hour).Add(-time.Duration(hours+3) * time.Hour).UnixNano()
	pos := uint64(0)
	for h := range hours {
		var base, tier []sketchd.PaneRecord
		for k := range keys {
			key := sketchd.EncodeKey(fmt.Sprintf("c%03d", k))
			merged, err := sketch.New(params)
			if err != nil {
				tb.Fatal(err)
			}
			for _, m := range minutes {
				sk, err := sketch.New(params)
				if err != nil {
					tb.Fatal(err)
				}
				for u := range 2 {
					item := []byte(fmt.Sprintf("u%d-%d-%d-%d", k, h, m, u))
					if err := sketch.Add(sk, item, 0, 0); err != nil {
						tb.Fatal(err)
					}
					if err := sketch.Add(merged, item, 0, 0); err != nil {
						tb.Fatal(err)
					}
				}
				blob, err := sk.AppendBinary(nil)
				if err != nil {
					tb.Fatal(err)
				}
				pos++
				base = append(base, sketchd.PaneRecord{Key: key, Start: start + int64(h)*hour + m*int64(time.Minute),
					Final: true, Events: 2, Applied: pos, Sketches: [][]byte{blob}})
			}
			blob, err := merged.AppendBinary(nil)
			if err != nil {
				tb.Fatal(err)
			}
			tier = append(tier, sketchd.PaneRecord{Key: key, Start: start + int64(h)*hour, Final: true, Events: 6, Applied: pos, Sketches: [][]byte{blob}})
		}
		commitPanes(tb, db, info.ID, pos, base)
		if err := db.WriteTier(ctx, info.ID, time.Hour, tier, start+int64(h+1)*hour); err != nil {
			tb.Fatal(err)
		}
	}
	end := start + int64(hours)*hour
	return db, query.Target{ID: info.ID, Spec: spec, Watermark: end + 2*hour, LastCommit: 1}, start
}

// keyReads counts the key-index reads of a store (its own and its tiers').
type keyReads struct {
	*store.DB
	n     atomic.Int64 // key-index reads
	tiers atomic.Int64 // tier-pane scans
}

func (r *keyReads) ScanTierPanes(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	r.tiers.Add(1)
	return r.DB.ScanTierPanes(ctx, id, tier, keys, from, to, fn)
}

// ScanTierPaneSlot is the store's one-slot scan (what the querier calls),
// counted as ScanTierPanes.
func (r *keyReads) ScanTierPaneSlot(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	if tier != 0 {
		r.tiers.Add(1)
	}
	return r.DB.ScanTierPaneSlot(ctx, id, tier, keys, from, to, slot, fn)
}

// ScanTierPaneSlotBorrowed is the store's lending one-slot scan, counted
// as ScanTierPanes.
func (r *keyReads) ScanTierPaneSlotBorrowed(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	if tier != 0 {
		r.tiers.Add(1)
	}
	return r.DB.ScanTierPaneSlotBorrowed(ctx, id, tier, keys, from, to, slot, fn)
}

func (r *keyReads) Keys(ctx context.Context, id uint32, from, to int64, fn func(string) error) error {
	r.n.Add(1)
	return r.DB.Keys(ctx, id, from, to, fn)
}

func (r *keyReads) TierKeys(ctx context.Context, id uint32, tier time.Duration, from, to int64, fn func(string) error) error {
	r.n.Add(1)
	return r.DB.TierKeys(ctx, id, tier, from, to, fn)
}

// sameResult fails unless a and b have the same groups and windows:
// bounds, events, panes and sketch bytes.
func sameResult(tb testing.TB, name string, a, b *query.Result) {
	tb.Helper()
	if len(a.Groups) != len(b.Groups) || a.Keys != b.Keys || a.Panes != b.Panes {
		tb.Fatalf("%s: %d groups %d keys %d panes, want %d %d %d", name, len(a.Groups), a.Keys, a.Panes, len(b.Groups), b.Keys, b.Panes)
	}
	for gi := range a.Groups {
		ga, gb := a.Groups[gi], b.Groups[gi]
		if fmt.Sprint(ga.Key) != fmt.Sprint(gb.Key) || len(ga.Windows) != len(gb.Windows) {
			tb.Fatalf("%s: group %v (%d windows), want %v (%d)", name, ga.Key, len(ga.Windows), gb.Key, len(gb.Windows))
		}
		for i := range ga.Windows {
			wa, wb := ga.Windows[i], gb.Windows[i]
			ba, _ := wa.Sketch.AppendBinary(nil)
			bb, _ := wb.Sketch.AppendBinary(nil)
			if wa.Start != wb.Start || wa.End != wb.End || wa.Events != wb.Events || wa.Panes != wb.Panes || !bytes.Equal(ba, bb) {
				tb.Fatalf("%s: group %v window %d: %d..%d events %d panes %d, want %d..%d events %d panes %d (sketches equal: %v)",
					name, ga.Key, i, wa.Start, wa.End, wa.Events, wa.Panes, wb.Start, wb.End, wb.Events, wb.Panes, bytes.Equal(ba, bb))
			}
		}
	}
}

func servedByTier(res *query.Result) bool {
	for _, s := range res.Resolution {
		if s.Tier {
			return true
		}
	}
	return false
}

// TestTierCaches: decoded rollup-tier panes and the keys of final spans
// are cached. A querier with those caches (window and result caches off,
// so each query is computed again) answers exactly as one without any
// cache, for a series the tier serves, a whole range and a series whose
// window edges fall inside tier panes (base spans at every edge); asked
// again, it decodes no sketch and reads no key index. A key that appears
// in a span that is not final (a later commit) is in the next answer: such
// spans are not cached.
func TestTierCaches(t *testing.T) {
	db, tgt, start := tierStore(t, 12, 30)
	r := &keyReads{DB: db}
	cached := query.New(r, query.Options{ResultEntries: -1, WindowCacheBytes: -1})
	plain := query.New(db, query.Options{ResultEntries: -1, WindowCacheBytes: -1, CacheBytes: -1})
	hour, minute := int64(time.Hour), int64(time.Minute)
	end := start + 30*hour
	shapes := map[string]query.Query{
		"hourly by country": {Aggregate: "users", From: start, To: end, Step: hour, GroupBy: []string{"country"}},
		"whole range":       {Aggregate: "users", From: start + 30*minute, To: end},
		"6h from minute 1":  {Aggregate: "users", From: start + minute, To: end - hour, Step: 6 * hour},
	}
	for name, qu := range shapes {
		want, err := plain.Query(t.Context(), tgt, qu)
		if err != nil {
			t.Fatal(err)
		}
		if !servedByTier(want) {
			t.Fatalf("%s: resolution %+v: no tier served it", name, want.Resolution)
		}
		for round := range 2 {
			d0, k0, s0 := cached.Stats().Decoded, r.n.Load(), r.tiers.Load()
			got, err := cached.Query(t.Context(), tgt, qu)
			if err != nil {
				t.Fatal(err)
			}
			sameResult(t, fmt.Sprintf("%s, round %d", name, round), got, want)
			d, k, sc := cached.Stats().Decoded-d0, r.n.Load()-k0, r.tiers.Load()-s0
			if round == 1 && (d != 0 || k != 0 || sc != 0) {
				t.Errorf("%s asked again: decoded %d sketches, read the key index %d times and scanned tier panes %d times, want 0, 0 and 0", name, d, k, sc)
			}
			if round == 0 && sc == 0 {
				t.Errorf("%s asked first: no tier-pane scan", name)
			}
		}
	}

	// A new key in the hour after the tier's cursor, which the target's
	// watermark leaves open: the next answer has it, cached or not.
	open := tgt
	open.Watermark = end + 30*minute
	qu := query.Query{Aggregate: "users", From: end - 3*hour, To: end + hour, GroupBy: []string{"country"}}
	if _, err := cached.Query(t.Context(), open, qu); err != nil {
		t.Fatal(err)
	}
	params, _ := tgt.Spec.Aggregates["users"].SketchParams()
	blob, err := sketchNew(params, "late-user")
	if err != nil {
		t.Fatal(err)
	}
	commitPanes(t, db, tgt.ID, 1<<20, []sketchd.PaneRecord{{Key: sketchd.EncodeKey("c999"), Start: end + 10*minute,
		Events: 1, Applied: 1 << 20, Sketches: [][]byte{blob}}})
	open.LastCommit++
	got, err := cached.Query(t.Context(), open, qu)
	if err != nil {
		t.Fatal(err)
	}
	want, err := plain.Query(t.Context(), open, qu)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "after a commit in an open span", got, want)
	if len(got.Groups) != 13 {
		t.Errorf("%d groups after the new key, want 13", len(got.Groups))
	}
}

// TestQueryBytesMeasured: the slot estimate of a sparse query (400 keys
// with one pane each in an hour: 24,000 slots, 26 MB at the assumed 1 KiB)
// is far past a 1 MiB max_query_bytes; measured from the stored blobs
// (400 small HLLs) the query fits and runs, the measure having read the
// panes of a sample of 8 keys (the scan then reads the 400). The same store
// grouped by country at 1-minute steps (12,000 output windows) is still
// refused, having decoded nothing.
func TestQueryBytesMeasured(t *testing.T) {
	db, tgt, hour := heavyStore(t, 200, 2)
	r := &paneReads{DB: db}
	q := query.New(r, query.Options{MaxQueryBytes: 1 << 20})
	res, err := q.Query(t.Context(), tgt, query.Query{Aggregate: "users", From: hour, To: hour + int64(time.Hour)})
	if err != nil {
		t.Fatalf("sparse whole-hour query: %v", err)
	}
	if res.Panes != 400 || res.Groups[0].Windows[0].Events != 400 {
		t.Errorf("panes %d events %d, want 400 and 400", res.Panes, res.Groups[0].Windows[0].Events)
	}
	if n := r.n.Load(); n != 400+8 {
		t.Errorf("read %d panes from the store, want 408 (a sample of 8 keys measured, then the 400 scanned)", n)
	}
	d0 := q.Stats().Decoded
	_, err = q.Query(t.Context(), tgt, heavyQuery(hour))
	var le *query.LimitError
	if !errors.As(err, &le) || le.Limit != "max_query_bytes" {
		t.Fatalf("err = %v, want max_query_bytes", err)
	}
	if d := q.Stats().Decoded - d0; d != 0 {
		t.Errorf("decoded %d sketches before refusing", d)
	}
}

// BenchmarkTierQuery: queries over a week of a tiered stream (40 keys, a
// 1-hour tier) as the load runner's 30-day mix asks them — a daily series
// from minute 1 (tier panes inside each day, base panes at every window's
// edge) and the whole range — with the tier-pane and final-span key caches
// (cached) and without any cache (plain); window and result caches off in
// both, so every op computes the answer. Compare the two within one run:
//
//	go test ./internal/query -run '^$' -bench TierQuery -benchmem
func BenchmarkTierQuery(b *testing.B) {
	db, tgt, start := tierStore(b, 40, 168)
	day, minute := int64(24*time.Hour), int64(time.Minute)
	shapes := []struct {
		name string
		qu   query.Query
	}{
		{"daily_from_minute_1", query.Query{Aggregate: "users", From: start + minute, To: start + 7*day, Step: day}},
		{"whole_week", query.Query{Aggregate: "users", From: start + 30*minute, To: start + 7*day}},
	}
	for _, sh := range shapes {
		for _, mode := range []string{"cached", "plain"} {
			b.Run(sh.name+"/"+mode, func(b *testing.B) {
				r := &keyReads{DB: db}
				o := query.Options{ResultEntries: -1, WindowCacheBytes: -1}
				if mode == "plain" {
					o.CacheBytes = -1
				}
				q := query.New(r, o)
				if _, err := q.Query(b.Context(), tgt, sh.qu); err != nil { // warm
					b.Fatal(err)
				}
				d0, k0 := q.Stats().Decoded, r.n.Load()
				b.ResetTimer()
				for b.Loop() {
					if _, err := q.Query(b.Context(), tgt, sh.qu); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(q.Stats().Decoded-d0)/float64(b.N), "decoded/op")
				b.ReportMetric(float64(r.n.Load()-k0)/float64(b.N), "keyreads/op")
			})
		}
	}
}

// TestOpenSpanKeysPerCommit: the keys of a span that is not final are
// read once per commit: another query over the same range (another
// aggregate view: group_by, where) before the next commit reads no key
// index; after a commit that adds a key, the next query reads it again
// and has the key.
func TestOpenSpanKeysPerCommit(t *testing.T) {
	db, tgt, start := tierStore(t, 12, 3)
	r := &keyReads{DB: db}
	q := query.New(r, query.Options{})
	hour, minute := int64(time.Hour), int64(time.Minute)
	end := start + 3*hour
	open := tgt
	open.Watermark = end + 30*minute // [end, end+1h) is not final
	from, to := end-hour+7*minute, end+hour
	if _, err := q.Query(t.Context(), open, query.Query{Aggregate: "users", From: from, To: to, GroupBy: []string{"country"}}); err != nil {
		t.Fatal(err)
	}
	k0 := r.n.Load()
	res, err := q.Query(t.Context(), open, query.Query{Aggregate: "users", From: from, To: to, Where: map[string][]string{"country": {"c003"}}})
	if err != nil {
		t.Fatal(err)
	}
	if k := r.n.Load() - k0; k != 0 || res.Keys != 1 {
		t.Errorf("a second query before the next commit read the key index %d times (keys %d), want 0 (1)", k, res.Keys)
	}
	params, _ := tgt.Spec.Aggregates["users"].SketchParams()
	blob, err := sketchNew(params, "new-user")
	if err != nil {
		t.Fatal(err)
	}
	commitPanes(t, db, tgt.ID, 1<<20, []sketchd.PaneRecord{{Key: sketchd.EncodeKey("c777"), Start: end + 5*minute,
		Events: 1, Applied: 1 << 20, Sketches: [][]byte{blob}}})
	open.LastCommit++
	k0 = r.n.Load()
	res, err = q.Query(t.Context(), open, query.Query{Aggregate: "users", From: from, To: to, Where: map[string][]string{"country": {"c777"}}})
	if err != nil {
		t.Fatal(err)
	}
	if k := r.n.Load() - k0; k == 0 || res.Keys != 1 || res.Groups[0].Windows[0].Events != 1 {
		t.Errorf("after the commit: %d key-index reads, keys %d, events %d; want > 0, 1, 1", k, res.Keys, res.Groups[0].Windows[0].Events)
	}
}

// paneReads counts the panes a store's scans deliver.
type paneReads struct {
	*store.DB
	n atomic.Int64
}

// ScanTierPaneSlot is the store's one-slot scan (what the querier calls),
// counted as ScanPanes.
func (r *paneReads) ScanTierPaneSlot(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanTierPaneSlot(ctx, id, tier, keys, from, to, slot, func(p sketchd.PaneRecord) error {
		if tier == 0 {
			r.n.Add(1)
		}
		return fn(p)
	})
}

// ScanTierPaneSlotBorrowed is the store's lending one-slot scan, counted
// as ScanPanes.
func (r *paneReads) ScanTierPaneSlotBorrowed(ctx context.Context, id uint32, tier time.Duration, keys []string, from, to int64, slot int, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanTierPaneSlotBorrowed(ctx, id, tier, keys, from, to, slot, func(p sketchd.PaneRecord) error {
		if tier == 0 {
			r.n.Add(1)
		}
		return fn(p)
	})
}

func (r *paneReads) ScanPanes(ctx context.Context, id uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanPanes(ctx, id, keys, from, to, func(p sketchd.PaneRecord) error {
		r.n.Add(1)
		return fn(p)
	})
}

func (r *paneReads) ScanPanesReusing(ctx context.Context, id uint32, keys []string, from, to int64, reuse func(string, int64) *sketchd.PaneRecord, fn func(sketchd.PaneRecord) error) error {
	return r.DB.ScanPanesReusing(ctx, id, keys, from, to, reuse, func(p sketchd.PaneRecord) error {
		r.n.Add(1)
		return fn(p)
	})
}
