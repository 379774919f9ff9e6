package query

import (
	"fmt"
	"testing"
	"time"
)

// TestMultiWindowCacheWhileCommitting: the multi-aggregate query goes
// through the window cache as Query does. Over a stream being ingested
// (seeded; real Aggregator and Badger, a commit every minute), each of its
// results equals the single answer of a querier without any cache, and a
// series of 1- or 5-minute steps decodes only the panes not final at the
// previous commit (for all four aggregates together) and takes every
// window final at the previous commit from the window cache.
func TestMultiWindowCacheWhileCommitting(t *testing.T) {
	const seed = 20261206
	t.Logf("seed %d", seed)
	l := newLive(t, seed, 12)
	cachedQ := New(l.db, Options{})
	plain := New(l.db, Options{CacheBytes: -1, ResultEntries: -1, WindowCacheBytes: -1})
	m := int64(time.Minute)
	aggs := []string{"users", "urls", "latency", "sample"}
	for range 30 {
		l.ingest(t)
	}
	for round := range 15 {
		prevWM := l.target.Watermark
		l.ingest(t)
		to := l.now()
		from := to - 30*m
		from5 := from - from%(5*m) // 5-minute windows that stay put as to moves
		for name, qu := range map[string]Query{
			"1m by country": {From: from, To: to, Step: m, GroupBy: []string{"country"}},
			"5m DE":         {From: from5, To: to, Step: 5 * m, Where: map[string][]string{"country": {"DE"}}},
		} {
			s0 := cachedQ.Stats()
			got, err := cachedQ.QueryMulti(t.Context(), l.target, qu, aggs)
			if err != nil {
				t.Fatal(err)
			}
			decoded, hits := cachedQ.Stats().Decoded-s0.Decoded, cachedQ.Stats().CachedWindows-s0.CachedWindows
			for i, agg := range aggs {
				single := qu
				single.Aggregate = agg
				want, err := plain.Query(t.Context(), l.target, single)
				if err != nil {
					t.Fatal(err)
				}
				sameResult(t, fmt.Sprintf("round %d %s %s", round, name, agg), got[i], want)
			}
			if open := l.openSlots(qu.From, to, prevWM) * len(l.keys) * len(aggs); round > 0 && decoded > int64(open) {
				t.Fatalf("round %d %s: decoded %d sketches, more than the %d panes × aggregates not final at the previous commit", round, name, decoded, open)
			}
			finalBefore := 0
			for s := qu.From + qu.Step; s <= to; s += qu.Step {
				if l.target.Spec.WindowFinalAt(s, prevWM) {
					finalBefore++
				}
			}
			if want := int64(finalBefore * len(aggs)); round > 0 && hits < want {
				t.Fatalf("round %d %s: %d windows from the window cache, want the %d final at the previous commit × %d aggregates",
					round, name, hits, finalBefore, len(aggs))
			}
		}
	}
}

// BenchmarkMultiWhileIngesting is one dashboard panel asking four
// aggregates at once (QueryMulti) while the stream ingests: each iteration
// commits one more minute (60 keys; not timed) and asks users, urls,
// latency and sample over the last hour at one-minute steps by country.
// "windows": with the window cache, which the multi-aggregate query now
// uses; "panes": without it (what the multi-aggregate query did before:
// the pane and block caches only). Compare within one run:
//
//	go test ./internal/query -run '^$' -bench MultiWhileIngesting -benchmem
func BenchmarkMultiWhileIngesting(b *testing.B) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"windows", Options{}},
		{"panes", Options{WindowCacheBytes: -1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := newLive(b, 1, 60)
			for range 90 {
				l.ingest(b)
			}
			q := New(l.db, c.opts)
			m := int64(time.Minute)
			aggs := []string{"users", "urls", "latency", "sample"}
			ask := func() {
				to := l.now()
				if _, err := q.QueryMulti(b.Context(), l.target, Query{From: to - 60*m, To: to, Step: m, GroupBy: []string{"country"}}, aggs); err != nil {
					b.Fatal(err)
				}
			}
			ask()
			s0 := q.Stats()
			timeAfterCommits(b, l, ask)
			s := q.Stats()
			b.ReportMetric(float64(s.Decoded-s0.Decoded)/float64(b.N), "decoded/op")
			b.ReportMetric(float64(s.CachedWindows-s0.CachedWindows)/float64(b.N), "cachedwin/op")
		})
	}
}
