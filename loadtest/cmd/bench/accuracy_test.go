package main

import (
	"math"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/gen"
)

// smallTruth generates a seeded event set over 10 minutes.
func smallTruth(t testing.TB) (*gen.Truth, time.Time) {
	t.Helper()
	g := gen.New(gen.Options{Seed: 5, Countries: 3, Devices: 2, Users: 500, URLs: 40})
	g.Track(time.Minute)
	from := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range 3000 {
		g.Next(from.Add(5*time.Second + time.Duration(i)*200*time.Millisecond))
	}
	return g.Truth, from
}

func f64(v float64) *float64 { return &v }

// exactWindow answers a window exactly from the truth, as a perfect
// sketch would.
func exactWindow(s gen.Summary, from, to time.Time, qs []float64) Window {
	w := Window{Start: from, End: to, Events: s.Events, Total: s.Events, ErrorBound: 10}
	d := float64(s.Distinct)
	w.Distinct = &struct {
		Estimate float64 `json:"estimate"`
		Lower    float64 `json:"lower"`
		Upper    float64 `json:"upper"`
		RSE      float64 `json:"relative_standard_error"`
	}{d, d * 0.98, d * 1.02, 0.008}
	for _, it := range s.TopURLs(10) {
		w.Top = append(w.Top, Freq{Item: it.Item, Estimate: it.Count, Lower: it.Count, Upper: it.Count})
	}
	for _, q := range qs {
		v, _ := s.QuantileOf(q)
		w.Quantiles = append(w.Quantiles, struct {
			Q         float64  `json:"q"`
			Value     *float64 `json:"value"`
			RankError *float64 `json:"rank_error"`
		}{q, f64(v), f64(0.01)})
	}
	pop := s.Events
	w.Population = &pop
	return w
}

func TestCompareExactAnswers(t *testing.T) {
	tr, from := smallTruth(t)
	to := from.Add(10 * time.Minute)
	qs := []float64{0.1, 0.5, 0.99}
	tc := &truthCache{t: tr, m: map[string]gen.Summary{}, qs: qs}
	var ans Answer
	ans.Groups = make([]struct {
		Key     map[string]string `json:"key"`
		Windows []Window          `json:"windows"`
	}, 0)
	// One group per country, one window per 5 minutes.
	for _, c := range []string{"US", "DE", "IN"} {
		g := struct {
			Key     map[string]string `json:"key"`
			Windows []Window          `json:"windows"`
		}{Key: map[string]string{"country": c}}
		for w := from; w.Before(to); w = w.Add(5 * time.Minute) {
			s := tc.get(filter{from: w, to: w.Add(5 * time.Minute), key: g.Key})
			g.Windows = append(g.Windows, exactWindow(s, w, w.Add(5*time.Minute), qs))
		}
		ans.Groups = append(ans.Groups, g)
	}
	var a Accuracy
	for _, kind := range []string{"hll", "cms", "tdigest", "reservoir"} {
		a.Compare(kind, ans, nil, tc, 10)
	}
	if a.Windows != 4*6 || a.EventsExact != a.Windows {
		t.Errorf("windows %d exact %d, want 24", a.Windows, a.EventsExact)
	}
	if a.HLL.N != 6 || a.HLL.Max != 0 || a.HLL.Coverage() != 1 {
		t.Errorf("hll %+v", a.HLL)
	}
	if a.CMS.N == 0 || a.CMS.Max != 0 || a.CMSUnder != 0 || a.TopK.Min != 1 {
		t.Errorf("cms %+v under %d topk %+v", a.CMS, a.CMSUnder, a.TopK)
	}
	if a.Quantile.N != 18 || a.Quantile.Max != 0 {
		t.Errorf("quantiles %+v", a.Quantile)
	}
	if a.Reservoir.Within != 6 {
		t.Errorf("reservoir %+v", a.Reservoir)
	}

	// The same answers, wrong: every count off, every estimate out of its
	// bounds.
	var b Accuracy
	for gi := range ans.Groups {
		for wi := range ans.Groups[gi].Windows {
			w := &ans.Groups[gi].Windows[wi]
			w.Events++
			w.Distinct.Estimate *= 1.5
			w.Distinct.Lower, w.Distinct.Upper = w.Distinct.Estimate*0.99, w.Distinct.Estimate*1.01
			w.Top[0].Estimate += 11 // over the bound of 10
			w.Top[1].Estimate--     // under the truth
			*w.Quantiles[1].Value = *w.Quantiles[2].Value
			*w.Population += 2
		}
	}
	for _, kind := range []string{"hll", "cms", "tdigest", "reservoir"} {
		b.Compare(kind, ans, nil, tc, 10)
	}
	if b.EventsExact != 0 || b.HLL.Within != 0 || math.Abs(b.HLL.Max-0.5) > 1e-9 {
		t.Errorf("wrong answers: exact %d, hll %+v", b.EventsExact, b.HLL)
	}
	if b.CMSUnder != 6 || b.CMS.N-b.CMS.Within != 12 || b.MaxOver != 11 {
		t.Errorf("wrong answers: cms %+v under %d max over %d", b.CMS, b.CMSUnder, b.MaxOver)
	}
	if b.Quantile.Within != 12 || b.Quantile.Max < 0.3 {
		t.Errorf("wrong answers: quantiles %+v", b.Quantile)
	}
	if b.Reservoir.Within != 0 || b.Reservoir.Max != 2 {
		t.Errorf("wrong answers: reservoir %+v", b.Reservoir)
	}
}

func TestRecall(t *testing.T) {
	s := gen.Summary{URLs: map[string]uint64{"a": 10, "b": 8, "c": 8, "d": 8, "e": 1}}
	tests := []struct {
		top  []string
		k    int
		want float64
	}{
		{[]string{"a", "b"}, 2, 1},
		{[]string{"a", "d"}, 2, 1}, // d ties with b at the 2nd count
		{[]string{"a", "e"}, 2, 0.5},
		{[]string{"e", "a", "b"}, 2, 0.5}, // only the first k count
		{[]string{"a", "b", "c", "d", "e"}, 10, 1},
		{[]string{"a"}, 3, 1.0 / 3},
	}
	for _, tt := range tests {
		var top []Freq
		for _, it := range tt.top {
			top = append(top, Freq{Item: it})
		}
		if got := Recall(top, s, tt.k); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Recall(%v, k=%d) = %v, want %v", tt.top, tt.k, got, tt.want)
		}
	}
}

func TestRankError(t *testing.T) {
	s := gen.Summary{Latencies: []float64{1, 2, 2, 2, 3, 4, 5, 6, 7, 8}}
	tests := []struct {
		q, v, want float64
	}{
		{0.25, 2, 0},    // 2 holds ranks [0.1, 0.4]
		{0.1, 2, 0},     // the edge
		{0.05, 2, 0.05}, // below
		{0.5, 2, 0.1},   // above
		{0.95, 8, 0},
		{0.5, 100, 0.5},
		{0.5, 0, 0.5},
	}
	for _, tt := range tests {
		if got := RankError(s, tt.q, tt.v); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("RankError(q=%v, v=%v) = %v, want %v", tt.q, tt.v, got, tt.want)
		}
	}
}

func TestFilter(t *testing.T) {
	from := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := filter{from: from, to: from.Add(time.Hour), where: map[string][]string{"country": {"DE", "FR"}},
		key: map[string]string{"device": "mobile"}}
	tests := []struct {
		k    gen.PaneKey
		want bool
	}{
		{gen.PaneKey{Start: from.UnixNano(), Country: "DE", Device: "mobile"}, true},
		{gen.PaneKey{Start: from.Add(59 * time.Minute).UnixNano(), Country: "FR", Device: "mobile"}, true},
		{gen.PaneKey{Start: from.Add(time.Hour).UnixNano(), Country: "FR", Device: "mobile"}, false},
		{gen.PaneKey{Start: from.Add(-time.Minute).UnixNano(), Country: "FR", Device: "mobile"}, false},
		{gen.PaneKey{Start: from.UnixNano(), Country: "US", Device: "mobile"}, false},
		{gen.PaneKey{Start: from.UnixNano(), Country: "DE", Device: "tablet"}, false},
	}
	for _, tt := range tests {
		if got := f.keep(tt.k); got != tt.want {
			t.Errorf("keep(%+v) = %v, want %v", tt.k, got, tt.want)
		}
	}
}

// TestCompareThetaDDSketch: theta answers are checked as hll's (truth in
// [lower, upper]); ddsketch quantiles against the exact value of rank
// ⌊q(n−1)⌋ and the answer's α: 0.5% off passes at α = 1%, 2% off fails.
func TestCompareThetaDDSketch(t *testing.T) {
	tr, from := smallTruth(t)
	to := from.Add(10 * time.Minute)
	qs := []float64{0.1, 0.5, 0.99}
	tc := &truthCache{t: tr, m: map[string]gen.Summary{}, qs: qs}
	answer := func(off float64) Answer {
		var ans Answer
		for _, c := range []string{"US", "DE"} {
			g := struct {
				Key     map[string]string `json:"key"`
				Windows []Window          `json:"windows"`
			}{Key: map[string]string{"country": c}}
			s := tc.get(filter{from: from, to: to, key: g.Key})
			w := exactWindow(s, from, to, nil)
			w.RelativeAccuracy = f64(0.01)
			for _, q := range qs {
				x := s.Latencies[int(q*float64(len(s.Latencies)-1))]
				w.Quantiles = append(w.Quantiles, struct {
					Q         float64  `json:"q"`
					Value     *float64 `json:"value"`
					RankError *float64 `json:"rank_error"`
				}{q, f64(x * (1 + off)), nil})
			}
			g.Windows = append(g.Windows, w)
			ans.Groups = append(ans.Groups, g)
		}
		return ans
	}
	var a Accuracy
	a.Compare("theta", answer(0.005), nil, tc, 10)
	a.Compare("ddsketch", answer(0.005), nil, tc, 10)
	if a.Theta.N != 2 || a.Theta.Within != 2 || a.DDSketch.N != 6 || a.DDSketch.Within != 6 || a.DDAlpha != 0.01 {
		t.Errorf("right answers: theta %+v ddsketch %+v α %g", a.Theta, a.DDSketch, a.DDAlpha)
	}
	var b Accuracy
	b.Compare("ddsketch", answer(0.02), nil, tc, 10)
	if b.DDSketch.Within != 0 || math.Abs(b.DDSketch.Max-0.02) > 1e-9 || b.Worst["ddsketch"] == "" {
		t.Errorf("wrong answers: ddsketch %+v worst %q", b.DDSketch, b.Worst["ddsketch"])
	}
}
