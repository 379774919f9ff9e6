package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/gen"
)

// TestCompareTDigestExtra: exact rank, mean and trimmed-mean answers are
// within their bounds; answers moved out of them are counted as misses.
func TestCompareTDigestExtra(t *testing.T) {
	tr, from := smallTruth(t)
	to := from.Add(10 * time.Minute)
	tc := &truthCache{t: tr, m: map[string]gen.Summary{}}
	s := tc.get(filter{from: from, to: to})
	w := Window{Start: from, End: to, Events: s.Events, Count: s.Events}
	m := exactMean(s.Latencies)
	w.Mean = &struct {
		Value *float64 `json:"value"`
		Lower *float64 `json:"lower"`
		Upper *float64 `json:"upper"`
	}{f64(m), f64(m), f64(m)}
	for _, x := range []float64{10, 55, 200} {
		below, upTo := s.Rank(x)
		fr := (below + upTo) / 2
		w.Ranks = append(w.Ranks, struct {
			Value    float64  `json:"value"`
			Fraction *float64 `json:"fraction"`
			Lower    *float64 `json:"lower"`
			Upper    *float64 `json:"upper"`
		}{x, f64(fr), f64(fr - 0.001), f64(fr + 0.001)})
	}
	for _, trim := range []float64{0, 0.05, 0.25} {
		v := TrimmedMean(s.Latencies, trim)
		w.TrimmedMeans = append(w.TrimmedMeans, struct {
			Trim  float64  `json:"trim"`
			Value *float64 `json:"value"`
			Lower *float64 `json:"lower"`
			Upper *float64 `json:"upper"`
		}{trim, f64(v), f64(v * 0.99), f64(v * 1.01)})
	}
	var a Accuracy
	a.compareTDigestExtra(w, nil, s)
	if a.Mean.N != 1 || a.Mean.Within != 1 || a.Rank.N != 3 || a.Rank.Within != 3 || a.Trimmed.N != 3 || a.Trimmed.Within != 3 {
		t.Fatalf("exact answers: mean %+v rank %+v trimmed %+v", a.Mean, a.Rank, a.Trimmed)
	}
	// Move every answer out of its bounds.
	*w.Mean.Value, *w.Mean.Lower, *w.Mean.Upper = m*1.1, m*1.09, m*1.11
	for i := range w.Ranks {
		r := &w.Ranks[i]
		*r.Fraction += 0.05
		*r.Lower += 0.05
		*r.Upper += 0.05
	}
	w.TrimmedMeans[1].Value, w.TrimmedMeans[1].Lower, w.TrimmedMeans[1].Upper = f64(1), f64(0.5), f64(2)
	var b Accuracy
	b.compareTDigestExtra(w, map[string]string{"country": "US"}, s)
	if b.Mean.Within != 0 || math.Abs(b.Mean.Max-0.1) > 1e-9 || b.Rank.Within != 0 || b.Trimmed.Within != 2 {
		t.Errorf("wrong answers: mean %+v rank %+v trimmed %+v", b.Mean, b.Rank, b.Trimmed)
	}
	for _, kind := range []string{"mean", "rank", "trimmed_mean"} {
		if b.Worst[kind] == "" {
			t.Errorf("no worst %s recorded: %v", kind, b.Worst)
		}
	}
}

func TestTrimmedMean(t *testing.T) {
	v := []float64{1, 2, 3, 4, 100}
	tests := []struct{ trim, want float64 }{
		{0, 22},
		{0.2, 3},                          // ranks [1, 4): 2, 3, 4
		{0.1, (0.5 + 2 + 3 + 4 + 50) / 4}, // half of 1 and of 100
	}
	for _, tt := range tests {
		if got := TrimmedMean(v, tt.trim); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("TrimmedMean(trim %g) = %g, want %g", tt.trim, got, tt.want)
		}
	}
}

func TestSameGroupsAndMultiOf(t *testing.T) {
	a := `{"stream":"pv","groups":[{"key":{"country":"DE"},"windows":[{"start":"s","final":true,"events":3,"distinct":{"estimate":2}}]}]}`
	b := `{"aggregate":"x","groups":[{"key":{"country":"DE"},"windows":[{"events":3,"final":false,"start":"s","distinct":{"estimate":2}}]}]}`
	c := strings.Replace(b, `"estimate":2`, `"estimate":3`, 1)
	if same, err := SameGroups([]byte(a), []byte(b)); err != nil || !same {
		t.Errorf("a, b: same %v, %v; want equal (final and other members aside)", same, err)
	}
	if same, _ := SameGroups([]byte(a), []byte(c)); same {
		t.Error("a, c: equal, but an estimate differs")
	}
	plan := accuracyPlan("pv", time.Unix(3600, 0), time.Unix(7200, 0))
	path, err := multiOf("pv", plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/v1/streams/pv/query?aggregate=users,urls,latency&", "group_by=country", "step=1h", "top=10", "rank=", "trim=", "q=0.01"} {
		if !strings.Contains(path, want) {
			t.Errorf("multi path %s lacks %q", path, want)
		}
	}
}
