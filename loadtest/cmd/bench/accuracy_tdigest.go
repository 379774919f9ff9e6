package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/sketchd/sketchd/internal/gen"
)

// TDigestExtra is the part of a t-digest answer beyond quantiles: the
// mean, ranks (rank=) and trimmed means (trim=), each with its bounds.
type TDigestExtra struct {
	Mean *struct {
		Value *float64 `json:"value"`
		Lower *float64 `json:"lower"`
		Upper *float64 `json:"upper"`
	} `json:"mean"`
	Ranks []struct {
		Value    float64  `json:"value"`
		Fraction *float64 `json:"fraction"`
		Lower    *float64 `json:"lower"`
		Upper    *float64 `json:"upper"`
	} `json:"ranks"`
	TrimmedMeans []struct {
		Trim  float64  `json:"trim"`
		Value *float64 `json:"value"`
		Lower *float64 `json:"lower"`
		Upper *float64 `json:"upper"`
	} `json:"trimmed_means"`
}

// compareTDigestExtra checks a window's mean, ranks and trimmed means
// against the truth: each within its stated bounds (ranks and trimmed
// means at the stated rank_error_confidence, 0.99; the mean always).
func (a *Accuracy) compareTDigestExtra(w Window, key map[string]string, tr gen.Summary) {
	n := len(tr.Latencies)
	if n == 0 {
		return
	}
	if m := w.Mean; m != nil && m.Value != nil {
		truth := exactMean(tr.Latencies)
		rel := math.Abs(*m.Value-truth) / math.Abs(truth)
		in := truth >= *m.Lower-1e-9*math.Abs(truth) && truth <= *m.Upper+1e-9*math.Abs(truth)
		a.Mean.Add(rel, in)
		if !in {
			a.miss("mean", rel, w, key, fmt.Sprintf("mean %g outside [%g, %g] (estimate %g)", truth, *m.Lower, *m.Upper, *m.Value))
		}
	}
	for _, r := range w.Ranks {
		if r.Fraction == nil {
			continue
		}
		below, atOrBelow := tr.Rank(r.Value)
		truth := (below + atOrBelow) / 2 // values equal to x by half, as the answer counts them
		e := math.Abs(*r.Fraction - truth)
		in := truth >= *r.Lower-1e-9 && truth <= *r.Upper+1e-9
		a.Rank.Add(e, in)
		if !in {
			a.miss("rank", e, w, key, fmt.Sprintf("rank(%g): true %.5f outside [%.5f, %.5f]", r.Value, truth, *r.Lower, *r.Upper))
		}
	}
	for _, t := range w.TrimmedMeans {
		if t.Value == nil {
			continue
		}
		truth := TrimmedMean(tr.Latencies, t.Trim)
		rel := math.Abs(*t.Value-truth) / math.Abs(truth)
		in := truth >= *t.Lower-1e-9*math.Abs(truth) && truth <= *t.Upper+1e-9*math.Abs(truth)
		a.Trimmed.Add(rel, in)
		if !in {
			a.miss("trimmed_mean", rel, w, key, fmt.Sprintf("trim %g: true %g outside [%g, %g] (estimate %g)", t.Trim, truth, *t.Lower, *t.Upper, *t.Value))
		}
	}
}

// TrimmedMean is the exact mean of the sorted values ranked in
// [trim·n, (1 − trim)·n], values cut at an end counted by the part of
// their rank inside (as a t-digest spreads a centroid over its ranks).
func TrimmedMean(sorted []float64, trim float64) float64 {
	n := float64(len(sorted))
	lo, hi := trim*n, (1-trim)*n
	var sum, w float64
	for i, v := range sorted {
		l, r := max(float64(i), lo), min(float64(i+1), hi)
		if r > l {
			sum += v * (r - l)
			w += r - l
		}
	}
	return sum / w
}

// exactMean is the mean with a compensated sum.
func exactMean(v []float64) float64 {
	var sum, c float64
	for _, x := range v {
		y := x - c
		t := sum + y
		c = (t - sum) - y
		sum = t
	}
	return sum / float64(len(v))
}

// SameGroups reports whether two answers hold the same groups and windows,
// a window's final flag aside (the committed watermark may move between
// the two requests).
func SameGroups(a, b []byte) (bool, error) {
	norm := func(raw []byte) ([]byte, error) {
		var v struct {
			Groups []struct {
				Key     map[string]string `json:"key"`
				Windows []map[string]any  `json:"windows"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		for _, g := range v.Groups {
			for _, w := range g.Windows {
				delete(w, "final")
			}
		}
		return json.Marshal(v.Groups)
	}
	na, err := norm(a)
	if err != nil {
		return false, err
	}
	nb, err := norm(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(na, nb), nil
}
