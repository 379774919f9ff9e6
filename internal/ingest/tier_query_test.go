package ingest

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/sketch"
)

// panesOnly is the real store seen without its tiers: a querier reading it
// answers from the stream's own panes.
type panesOnly struct{ query.PaneReader }

// TestTierAnswersEqualBase ingests two minutes of seeded events into a
// stream with 5s and 30s tiers over 1s panes, lets the builder build them,
// and asks queries whose ranges and steps make the planner use each tier,
// with ragged edges read from finer tiers and panes: every window of every
// group must equal the answer from the panes alone, exactly for hll, cms
// and reservoir, and within the t-digest's rank error.
func TestTierAnswersEqualBase(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := tierSpec("eq")
	spec.GroupBy = []string{"country", "url"}
	m := newManager(t, nc, db, Options{})
	ctx := context.Background()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const seed = 11
	t.Logf("seed %d", seed)
	evs := genEvents(seed, 12000) // 120 s, 10 ms apart
	last := evs[len(evs)-1].TS
	evs = append(evs, event{TS: last + 600_000, Country: "DE", User: "x", URL: "/p/0", MS: 1}) // makes the rest final
	for i := 0; i < len(evs); i += 200 {
		if _, err := js.Publish(ctx, spec.Subject, joinLines(evs[i:min(i+200, len(evs))])); err != nil {
			t.Fatal(err)
		}
	}
	end := sketchd.PaneStart(time.UnixMilli(last).UnixNano(), int64(30*time.Second)) + int64(30*time.Second)
	var st sketchd.StreamStatus
	began := time.Now()
	waitFor(t, 60*time.Second, "tiers built", func() (bool, string) {
		st, _ = m.Get(ctx, spec.Name)
		return len(st.Rollups) == 2 && st.Rollups[1].BuiltTo >= end, fmt.Sprintf("%+v %+v", st.Counters, st.Rollups)
	})
	t.Logf("ingested and built in %s", time.Since(began))
	opts := query.Options{CacheBytes: -1, ResultEntries: -1}
	tiered, plain := newQuerier(t, db, opts), newQuerier(t, panesOnly{db}, opts)
	target := query.Target{ID: st.ID, Spec: st.Spec, Watermark: st.CommittedWatermark}

	t0 := base.UnixNano()
	sec := int64(time.Second)
	shapes := []struct {
		name                   string
		from, to, step, window int64
	}{
		{"whole range, ragged", t0 + 3*sec, t0 + 117*sec, 0, 0},
		{"30s steps", t0, t0 + 120*sec, 30 * sec, 0},
		{"60s steps, ragged start", t0 + 7*sec, t0 + 110*sec, 60 * sec, 0},
		{"5s steps", t0 + 12*sec, t0 + 100*sec, 5 * sec, 0},
		{"sliding 30s every 10s", t0, t0 + 120*sec, 10 * sec, 30 * sec},
		{"2s steps (panes only)", t0, t0 + 20*sec, 2 * sec, 0},
	}
	filters := []struct {
		where   map[string][]string
		groupBy []string
	}{
		{nil, nil},
		{nil, []string{"country"}},
		{map[string][]string{"country": {"DE"}}, []string{"url"}},
		{map[string][]string{"url": {"/p/1", "/p/2"}}, []string{"country", "url"}},
	}
	tiersUsed := map[int64]bool{}
	aggs := []string{"users", "urls", "latency", "sample"}
	for _, sh := range shapes {
		for fi, f := range filters {
			// One multi-aggregate query (one key-index scan, the same
			// tiers) answers each aggregate as its own query does.
			multi, err := tiered.QueryMulti(ctx, target, query.Query{From: sh.from, To: sh.to, Step: sh.step, Window: sh.window, Where: f.where, GroupBy: f.groupBy}, aggs)
			if err != nil {
				t.Fatal(err)
			}
			for ai, agg := range aggs {
				qu := query.Query{Aggregate: agg, From: sh.from, To: sh.to, Step: sh.step, Window: sh.window, Where: f.where, GroupBy: f.groupBy}
				got, err := tiered.Query(ctx, target, qu)
				if err != nil {
					t.Fatal(err)
				}
				want, err := plain.Query(ctx, target, qu)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range got.Resolution {
					if s.Tier {
						tiersUsed[s.Granularity] = true
					}
				}
				at := fmt.Sprintf("%s, filter %d, %s", sh.name, fi, agg)
				sameResult(t, at, got, want)
				sameResult(t, at+", multi-aggregate", multi[ai], got)
			}
		}
	}
	for _, g := range []time.Duration{5 * time.Second, 30 * time.Second} {
		if !tiersUsed[int64(g)] {
			t.Errorf("no query read the %s tier: %v", g, tiersUsed)
		}
	}

	// Tiers outlive the panes (a longer retention): with the panes of the
	// day dropped, the keys and the tiers' answers remain.
	qu := query.Query{Aggregate: "users", From: t0, To: t0 + 120*sec, Step: 30 * sec, GroupBy: []string{"country"}}
	before, err := tiered.Query(ctx, target, qu)
	if err != nil {
		t.Fatal(err)
	}
	keysBefore, _, err := tiered.Keys(ctx, target, t0, t0+120*sec, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DropBefore(ctx, st.ID, t0+int64(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys, _, err := plain.Keys(ctx, target, t0, t0+120*sec, nil, 0); err != nil || len(keys) != 0 {
		t.Fatalf("panes-only keys after the drop: %d %v", len(keys), err)
	}
	keysAfter, _, err := tiered.Keys(ctx, target, t0, t0+120*sec, nil, 0)
	if err != nil || len(keysAfter) != len(keysBefore) || len(keysBefore) != 200 {
		t.Errorf("keys from the tiers: %d (%v), before the drop %d, want 200", len(keysAfter), err, len(keysBefore))
	}
	after, err := tiered.Query(ctx, target, qu)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "after dropping the panes", after, before)
	multi, err := tiered.QueryMulti(ctx, target, qu, []string{"latency", "users"})
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "multi-aggregate after dropping the panes", multi[1], before)
}

// sameResult compares two answers window by window.
func sameResult(t *testing.T, at string, got, want *query.Result) {
	t.Helper()
	if len(got.Groups) != len(want.Groups) {
		t.Fatalf("%s: %d groups, want %d", at, len(got.Groups), len(want.Groups))
	}
	for gi := range want.Groups {
		gw, ww := got.Groups[gi].Windows, want.Groups[gi].Windows
		if fmt.Sprint(got.Groups[gi].Key) != fmt.Sprint(want.Groups[gi].Key) || len(gw) != len(ww) {
			t.Fatalf("%s: group %v with %d windows, want %v with %d", at, got.Groups[gi].Key, len(gw), want.Groups[gi].Key, len(ww))
		}
		for i := range ww {
			wat := fmt.Sprintf("%s, group %v, window %d", at, want.Groups[gi].Key, i)
			if gw[i].Events != ww[i].Events || gw[i].Start != ww[i].Start || gw[i].Final != ww[i].Final {
				t.Fatalf("%s: %d events [%d final %v], want %d [%d final %v]", wat, gw[i].Events, gw[i].Start, gw[i].Final, ww[i].Events, ww[i].Start, ww[i].Final)
			}
			sameWindowSketch(t, wat, gw[i].Sketch, ww[i].Sketch)
		}
	}
}

// sameWindowSketch: hll, cms and reservoir exactly (estimates, counters,
// sample bytes); t-digest quantiles within twice the rank error (both are
// within it of the truth) plus one value.
func sameWindowSketch(t *testing.T, at string, got, want sketch.Sketch) {
	t.Helper()
	if got.Count() != want.Count() {
		t.Fatalf("%s: count %d, want %d", at, got.Count(), want.Count())
	}
	switch w := want.(type) {
	case *sketch.HLL:
		if g, w := got.(*sketch.HLL).Estimate(), w.Estimate(); g != w {
			t.Fatalf("%s: distinct %+v, want %+v", at, g, w)
		}
	case *sketch.CountMin:
		g := got.(*sketch.CountMin)
		for i := range 50 {
			item := fmt.Appendf(nil, "/p/%d", i)
			if ge, we := g.Estimate(item), w.Estimate(item); fmt.Sprint(ge) != fmt.Sprint(we) {
				t.Fatalf("%s: %s estimate %+v, want %+v", at, item, ge, we)
			}
		}
		if fmt.Sprint(g.TopK(5)) != fmt.Sprint(w.TopK(5)) {
			t.Fatalf("%s: top 5 %v, want %v", at, g.TopK(5), w.TopK(5))
		}
	case *sketch.Reservoir:
		gb, _ := got.AppendBinary(nil)
		wb, _ := w.AppendBinary(nil)
		if string(gb) != string(wb) {
			t.Fatalf("%s: sample %q, want %q", at, got.(*sketch.Reservoir).Sample(), w.Sample())
		}
	case *sketch.TDigest:
		g := got.(*sketch.TDigest)
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
			gq, wq := g.Quantile(q), w.Quantile(q)
			tol := 2*wq.RankError + 1/float64(max(w.Count(), 1))
			if r := w.CDF(gq.Value); math.Abs(r-q) > tol+1e-9 && w.Count() > 20 {
				t.Fatalf("%s: q%v = %v has rank %v from the panes (tolerance %v)", at, q, gq.Value, r, tol)
			}
		}
	default:
		t.Fatalf("%s: unexpected sketch %T", at, want)
	}
}
