package api

import (
	"math"

	"github.com/sketchd/sketchd/sketch"
)

// meanJSON is the mean of a digest's values: exact up to floating-point
// rounding, which [lower, upper] covers.
type meanJSON struct {
	Value *float64 `json:"value"`
	Lower *float64 `json:"lower"`
	Upper *float64 `json:"upper"`
}

// rankJSON is the rank of a value: the fraction of values ≤ it (values
// equal to it by half), with its bound, and as a count (bounds rounded
// outward).
type rankJSON struct {
	Value      float64  `json:"value"`
	Fraction   *float64 `json:"fraction"`
	Lower      *float64 `json:"lower"`
	Upper      *float64 `json:"upper"`
	RankError  *float64 `json:"rank_error"`
	Count      *float64 `json:"count"`
	CountLower *uint64  `json:"count_lower"`
	CountUpper *uint64  `json:"count_upper"`
}

// trimmedJSON is the mean of the values ranked in [trim, 1 − trim].
type trimmedJSON struct {
	Trim  float64  `json:"trim"`
	Value *float64 `json:"value"`
	Lower *float64 `json:"lower"`
	Upper *float64 `json:"upper"`
}

// addTDigestAnswers sets the mean, ranks and trimmed means of a.
func addTDigestAnswers(a *tdigestAnswer, sk *sketch.TDigest, p queryParams) {
	a.RankErrorConfidence = sketch.RankConfidence
	if a.Count > 0 {
		m := sk.Mean()
		a.Mean = meanJSON{num(m.Value), num(m.Lower), num(m.Upper)}
	}
	if len(p.rank) > 0 {
		a.Ranks = make([]rankJSON, 0, len(p.rank))
		for _, x := range p.rank {
			r := rankJSON{Value: x}
			if a.Count > 0 {
				e := sk.Rank(x)
				n := float64(a.Count)
				r.Fraction, r.Lower, r.Upper, r.RankError = num(e.Fraction), num(e.Lower), num(e.Upper), num(e.RankError)
				r.Count = num(e.Fraction * n)
				lo, hi := uint64(math.Floor(e.Lower*n)), uint64(math.Ceil(e.Upper*n))
				r.CountLower, r.CountUpper = &lo, &hi
			}
			a.Ranks = append(a.Ranks, r)
		}
	}
	if len(p.trim) > 0 {
		a.TrimmedMeans = make([]trimmedJSON, 0, len(p.trim))
		for _, f := range p.trim {
			tj := trimmedJSON{Trim: f}
			if a.Count > 0 {
				e := sk.TrimmedMean(f, 1-f)
				tj.Value, tj.Lower, tj.Upper = num(e.Value), num(e.Lower), num(e.Upper)
			}
			a.TrimmedMeans = append(a.TrimmedMeans, tj)
		}
	}
}
