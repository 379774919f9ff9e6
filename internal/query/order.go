package query

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// Order ranks the groups of a whole-range result by a member of their
// answer, and keeps the first Limit.
type Order struct {
	By    string  // the member, as given: events, distinct, total, count, mean, min, max, population, q<quantile>
	Q     float64 // the quantile of By q<quantile>
	Asc   bool    // smallest first; default largest first
	Limit int     // groups kept; 0 keeps every group
}

// orderMembers lists what each kind's groups can be ranked by, besides the
// exact event count ("events") that every kind has.
var orderMembers = map[sketchd.AggregateKind][]string{
	sketchd.KindHLL:       {"distinct"},
	sketchd.KindCMS:       {"total"},
	sketchd.KindTDigest:   {"count", "mean", "min", "max", "q<quantile> (q0.99)"},
	sketchd.KindReservoir: {"population"},
	sketchd.KindTheta:     {"distinct"},
	sketchd.KindDDSketch:  {"count", "min", "max", "q<quantile> (q0.99)"},
}

// ParseOrder parses order_by for an aggregate of kind: a member, optionally
// followed by ":asc" or ":desc" (the default: largest first).
func ParseOrder(kind sketchd.AggregateKind, s string, limit int) (Order, error) {
	o := Order{Limit: limit}
	by, dir, hasDir := strings.Cut(s, ":")
	switch {
	case !hasDir, dir == "desc":
	case dir == "asc":
		o.Asc = true
	default:
		return o, &ParamError{"order_by", fmt.Sprintf("want member, member:asc or member:desc, got %q", s)}
	}
	o.By = by
	members := append([]string{"events"}, orderMembers[kind]...)
	if by == "events" {
		return o, nil
	}
	if qs, ok := strings.CutPrefix(by, "q"); ok && (kind == sketchd.KindTDigest || kind == sketchd.KindDDSketch) {
		q, err := strconv.ParseFloat(qs, 64)
		if err != nil || !(q >= 0 && q <= 1) {
			return o, &ParamError{"order_by", fmt.Sprintf("want q followed by a quantile in [0, 1] (q0.99), got %q", by)}
		}
		o.Q = q
		return o, nil
	}
	if !slices.Contains(members, by) {
		return o, &ParamError{"order_by", fmt.Sprintf("a %s aggregate's groups rank by %s, got %q", kind, strings.Join(members, ", "), by)}
	}
	return o, nil
}

// Ranking is how a result's groups were ranked.
type Ranking struct {
	Order  Order
	Groups int // groups ranked, before the limit
	// Ambiguous: the limit cuts between groups whose bounds overlap, so
	// which of them belong in the kept set is itself uncertain.
	// AmbiguousGroups are those groups (kept or not), in rank order.
	Ambiguous       bool
	AmbiguousGroups []map[string]string
	// Values holds the ranked value of each kept group, in order, with
	// its bounds (equal to it for exact members).
	Values []RankedValue
}

// RankedValue is the value a group was ranked by.
type RankedValue struct {
	Value, Lower, Upper float64 // NaN for a group with nothing to rank (an empty digest)
}

// RankGroups sorts res's groups by o (ties keep group order), cuts them to
// o.Limit, and says whether the cut is ambiguous. res must hold one window
// per group (no step).
func RankGroups(res *Result, o Order) (*Ranking, error) {
	vals := make([]RankedValue, len(res.Groups))
	for i, g := range res.Groups {
		if len(g.Windows) != 1 {
			return nil, &ParamError{"order_by", "ranks groups by one answer over the whole range: drop step"}
		}
		vals[i] = rankedValue(&g.Windows[0], o)
	}
	idx := make([]int, len(vals))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		va, vb := vals[a].Value, vals[b].Value
		switch na, nb := math.IsNaN(va), math.IsNaN(vb); {
		case na || nb:
			return cmpBool(na, nb) // no value last
		case o.Asc:
			return cmp.Compare(va, vb)
		}
		return cmp.Compare(vb, va)
	})
	r := &Ranking{Order: o, Groups: len(idx)}
	k := len(idx)
	if o.Limit > 0 && o.Limit < k {
		k = o.Limit
		r.AmbiguousGroups = ambiguous(idx, vals, k, o.Asc, res.Groups)
		r.Ambiguous = len(r.AmbiguousGroups) > 0
	}
	groups := make([]Group, k)
	r.Values = make([]RankedValue, k)
	for j, i := range idx[:k] {
		groups[j], r.Values[j] = res.Groups[i], vals[i]
	}
	res.Groups = groups
	return r, nil
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// ambiguous returns the groups on either side of the cut after k whose
// bounds overlap a group's on the other side: a group left out that may
// rank above a kept one, and the kept ones it may rank above.
func ambiguous(idx []int, vals []RankedValue, k int, asc bool, groups []Group) []map[string]string {
	// In "better" terms: for descending, better = larger.
	better := func(v float64) float64 {
		if asc {
			return -v
		}
		return v
	}
	worstKept, bestOut := math.Inf(1), math.Inf(-1) // the kept's lowest possible, the rest's highest possible
	for j, i := range idx {
		v := vals[i]
		if math.IsNaN(v.Value) {
			continue
		}
		lo, hi := min(better(v.Lower), better(v.Upper)), max(better(v.Lower), better(v.Upper))
		if j < k {
			worstKept = min(worstKept, lo)
		} else {
			bestOut = max(bestOut, hi)
		}
	}
	var out []map[string]string
	for j, i := range idx {
		v := vals[i]
		if math.IsNaN(v.Value) {
			continue
		}
		lo, hi := min(better(v.Lower), better(v.Upper)), max(better(v.Lower), better(v.Upper))
		if (j < k && lo <= bestOut) || (j >= k && hi >= worstKept) {
			out = append(out, groups[i].Key)
		}
	}
	return out
}

// rankedValue is the value of o's member in a window's answer.
func rankedValue(w *Window, o Order) RankedValue {
	exact := func(x float64) RankedValue { return RankedValue{x, x, x} }
	if o.By == "events" {
		return exact(float64(w.Events))
	}
	nan := RankedValue{math.NaN(), math.NaN(), math.NaN()}
	switch sk := w.Sketch.(type) {
	case *sketch.HLL:
		e := sk.Estimate()
		return RankedValue{e.Estimate, math.Floor(e.Lower), math.Ceil(e.Upper)}
	case *sketch.CountMin:
		return exact(float64(sk.Total()))
	case *sketch.Reservoir:
		return exact(float64(sk.Population()))
	case *sketch.TDigest:
		if sk.Count() == 0 {
			return nan
		}
		switch o.By {
		case "count":
			return exact(float64(sk.Count()))
		case "mean":
			m := sk.Mean()
			return RankedValue{m.Value, m.Lower, m.Upper}
		case "min":
			return exact(sk.Min())
		case "max":
			return exact(sk.Max())
		}
		e := sk.Quantile(o.Q)
		return RankedValue{e.Value, e.Lower, e.Upper}
	case *sketch.Theta:
		e := sk.Estimate()
		return RankedValue{e.Estimate, math.Floor(e.Lower), math.Ceil(e.Upper)}
	case *sketch.DDSketch:
		if sk.Count() == 0 {
			return nan
		}
		switch o.By {
		case "count":
			return exact(float64(sk.Count()))
		case "min":
			return exact(sk.Min())
		case "max":
			return exact(sk.Max())
		}
		e := sk.Quantile(o.Q)
		return RankedValue{e.Value, e.Lower, e.Upper}
	}
	return nan
}
