package sketch

import "math"

// RankConfidence is the share of answers whose stated rank error of a
// t-digest (QuantileEstimate.RankError, RankEstimate.RankError) holds, as
// measured, not derived: the stated error is half the weight of the
// centroids an answer interpolates between, a heuristic (a merged digest's
// centroids may overlap in value, so no hard bound exists). Over seeded
// digests built as queries build them (merges of pane digests, 10 to 10^6
// values; TestTDigestRankErrorCoverage) and in the load runner's accuracy
// check it holds for more than 99% of quantiles and ranks.
const RankConfidence = 0.99

// RankEstimate is the estimated rank of a value: the fraction of the
// digest's values at or below it.
type RankEstimate struct {
	X float64
	// Fraction of values ≤ X, values equal to X counted by half (as CDF);
	// NaN when the digest is empty or X is NaN.
	Fraction float64
	// RankError is the ± error of Fraction (as a fraction of the count),
	// at RankConfidence: half the weight of the centroids around X over
	// the count; 0 outside [min, max], where the answer is exact.
	RankError float64
	// Lower and Upper are Fraction ∓ RankError, clamped to [0, 1].
	Lower, Upper float64
}

// Rank estimates the fraction of values ≤ x with its error (see CDF).
func (t *TDigest) Rank(x float64) RankEstimate {
	e := RankEstimate{X: x, Fraction: t.CDF(x), Lower: math.NaN(), Upper: math.NaN()}
	if math.IsNaN(e.Fraction) {
		return e
	}
	if x >= t.min && x <= t.max {
		e.RankError = t.weightAround(t.view(), x) / 2 / float64(t.n)
	}
	e.Lower, e.Upper = max(0, e.Fraction-e.RankError), min(1, e.Fraction+e.RankError)
	return e
}

// weightAround returns the largest weight of the centroids whose means
// bracket x (cs sorted by mean, not empty).
func (t *TDigest) weightAround(cs []centroid, x float64) float64 {
	i := 0
	for i < len(cs) && cs[i].mean <= x {
		i++
	}
	// cs[i-1].mean ≤ x < cs[i].mean
	var w uint64
	if i > 0 {
		w = cs[i-1].w
		for j := i - 2; j >= 0 && cs[j].mean == x; j-- {
			w = max(w, cs[j].w)
		}
	}
	if i < len(cs) {
		w = max(w, cs[i].w)
	}
	return float64(max(w, 1))
}

// MeanEstimate is the mean of the values added, with bounds for
// floating-point rounding only.
type MeanEstimate struct {
	Value        float64 // NaN when empty
	Lower, Upper float64
}

// Mean returns the mean of the values added. It is exact up to rounding:
// each centroid keeps the mean of its values, so Σ mean·weight is their
// sum. Lower and Upper allow 2·u·(c + f)·Σ|mean|·weight / N each way
// (u = 2⁻⁵³, c centroids summed, f ≈ N / buffer the compress passes that
// re-averaged centroid means): a bound on the rounding of the sum and of
// the means along their merges.
func (t *TDigest) Mean() MeanEstimate {
	if t.n == 0 {
		return MeanEstimate{math.NaN(), math.NaN(), math.NaN()}
	}
	cs := t.view()
	N := float64(t.n)
	sum, abs := weightedSums(cs, 1)
	m, absMean := sum/N, abs/N
	if math.IsInf(sum, 0) || math.IsInf(abs, 0) {
		// A large count of large values: each mean weighs its share of
		// the count instead (the same mean, rounded otherwise).
		m, absMean = weightedSums(cs, N)
	}
	slack := t.roundingSlack(len(cs), absMean)
	return MeanEstimate{m, max(m-slack, t.min), min(m+slack, t.max)}
}

// roundingSlack bounds the floating-point rounding of a mean of values
// whose mean magnitude is absMean, summed over terms centroids.
func (t *TDigest) roundingSlack(terms int, absMean float64) float64 {
	passes := float64(t.n)/float64(t.bufCap()) + 1
	return 2 * 0x1p-53 * (float64(terms) + passes) * absMean
}

// TrimmedEstimate is the estimated mean of the values whose rank lies in
// [Lo, Hi] (fractions of the count).
type TrimmedEstimate struct {
	Lo, Hi float64
	Value  float64 // NaN when empty or the cut is not 0 ≤ Lo < Hi ≤ 1
	// Lower and Upper bound Value at RankConfidence: the values the
	// digest may have put on the wrong side of a cut are at most
	// RankError × count at each end, each off by at most the width of the
	// values within RankError of the cut (QuantileEstimate Lower..Upper):
	// ±(ε_lo·width_lo + ε_hi·width_hi) / (Hi − Lo), plus rounding (see
	// Mean).
	Lower, Upper float64
}

// TrimmedMean estimates the mean of the values ranked between the lo and
// hi quantiles, treating each centroid's weight as spread evenly over its
// ranks (TDIGEST.TRIMMED_MEAN in Redis).
func (t *TDigest) TrimmedMean(lo, hi float64) TrimmedEstimate {
	e := TrimmedEstimate{Lo: lo, Hi: hi, Value: math.NaN(), Lower: math.NaN(), Upper: math.NaN()}
	if t.n == 0 || !(lo >= 0 && lo < hi && hi <= 1) {
		return e
	}
	cs := t.view()
	N := float64(t.n)
	a, b := lo*N, hi*N
	sum, abs, w := cutSums(cs, a, b, 1)
	if w == 0 {
		return e
	}
	if math.IsInf(sum, 0) || math.IsInf(abs, 0) {
		// Large values over many ranks: each mean weighs its share of
		// the cut instead (the same mean, rounded otherwise).
		sum, abs, w = cutSums(cs, a, b, b-a)
	}
	e.Value = sum / w
	ql, qh := t.Quantile(lo), t.Quantile(hi)
	slack := (ql.RankError*(ql.Upper-ql.Lower)+qh.RankError*(qh.Upper-qh.Lower))/(hi-lo) +
		t.roundingSlack(len(cs), abs/w)
	e.Lower, e.Upper = max(e.Value-slack, t.min), min(e.Value+slack, t.max)
	return e
}

// weightedSums returns the sums of cs's means and of their magnitudes,
// each weighted by its weight / scale.
func weightedSums(cs []centroid, scale float64) (sum, abs float64) {
	for _, c := range cs {
		f := float64(c.w) / scale
		sum += c.mean * f
		abs += math.Abs(c.mean) * f
	}
	return sum, abs
}

// cutSums returns the sums of cs's means and of their magnitudes over the
// ranks [a, b], each weighted by the ranks of the mean's centroid inside
// them / scale, and those weights' sum: a centroid's weight is spread
// evenly over its ranks.
func cutSums(cs []centroid, a, b, scale float64) (sum, abs, w float64) {
	var cum float64
	for _, c := range cs {
		cw := float64(c.w)
		l, r := max(cum, a), min(cum+cw, b)
		if r > l {
			f := (r - l) / scale
			sum += c.mean * f
			abs += math.Abs(c.mean) * f
			w += f
		}
		cum += cw
		if cum >= b {
			break
		}
	}
	return sum, abs, w
}
