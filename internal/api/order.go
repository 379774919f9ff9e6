package api

import (
	"net/url"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// rankingNote says what rank_ambiguous means.
const rankingNote = "ranking by an estimate is itself approximate: rank_ambiguous is true when groups on both sides of the limit have overlapping [lower, upper] bounds (listed in ambiguous_groups), so either could belong in the list"

// rankingJSON says how the groups of an answer were ranked and cut.
type rankingJSON struct {
	OrderBy         string              `json:"order_by"`
	Order           string              `json:"order"`
	Limit           *int                `json:"limit"`
	Groups          int                 `json:"groups"` // ranked, before the limit
	RankAmbiguous   bool                `json:"rank_ambiguous"`
	AmbiguousGroups []map[string]string `json:"ambiguous_groups"`
	Values          []rankedJSON        `json:"values"` // per returned group, in order
	Note            string              `json:"note"`
}

type rankedJSON struct {
	Value *float64 `json:"value"`
	Lower *float64 `json:"lower"`
	Upper *float64 `json:"upper"`
}

// parseOrder reads order_by and limit (limit needs order_by; neither goes
// with step).
func parseOrder(v url.Values, agg sketchd.Aggregate, p queryParams, maxLimit int) (*query.Order, error) {
	vals, ok := v["order_by"]
	if !ok {
		if _, ok := v["limit"]; ok {
			return nil, paramError("limit", "needs order_by: it keeps the first groups of a ranking")
		}
		return nil, nil
	}
	if len(vals) != 1 {
		return nil, paramError("order_by", "given %d times; give it once", len(vals))
	}
	if p.step != 0 {
		return nil, paramError("order_by", "ranks groups by one answer over the whole range: drop step")
	}
	limit, err := parseInt(v, "limit", 0, 1, maxLimit)
	if err != nil {
		return nil, err
	}
	o, err := query.ParseOrder(agg.Sketch, vals[0], limit)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// renderRanking renders how RankGroups ranked the groups.
func renderRanking(r *query.Ranking) *rankingJSON {
	out := &rankingJSON{OrderBy: r.Order.By, Order: "desc", Groups: r.Groups, RankAmbiguous: r.Ambiguous,
		AmbiguousGroups: r.AmbiguousGroups, Values: make([]rankedJSON, 0, len(r.Values)), Note: rankingNote}
	if r.Order.Asc {
		out.Order = "asc"
	}
	if r.Order.Limit > 0 {
		out.Limit = &r.Order.Limit
	}
	if out.AmbiguousGroups == nil {
		out.AmbiguousGroups = []map[string]string{}
	}
	for _, v := range r.Values {
		out.Values = append(out.Values, rankedJSON{num(v.Value), num(v.Lower), num(v.Upper)})
	}
	return out
}
