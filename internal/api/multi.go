package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// multiJSON answers several aggregates at once: each result is the answer
// the aggregate's own endpoint gives for the same parameters.
type multiJSON struct {
	Stream  string        `json:"stream"`
	Keys    int           `json:"keys"`
	Results []*resultJSON `json:"results"`
}

// multiQuery answers GET /v1/streams/{stream}/query?aggregate=a&aggregate=b:
// several aggregates over the same range, filter, grouping and windows, with
// one scan of the key index (query.Querier.QueryMulti).
func (s *server) multiQuery(w http.ResponseWriter, r *http.Request) {
	st, names, ps, err := s.prepareMulti(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := ps[0]
	t, qu := target(&st), query.Query{
		From: p.from, To: p.to, Filters: p.filters, GroupBy: p.groupBy,
		Step: p.step, Window: p.window,
	}
	key, question, cacheable := s.answerKeys(r, t, qu, &p)
	if question != "" {
		question = "multi\x00" + question
	}
	s.answerCached(w, r, "multi\x00"+key, question, cacheable, func(ctx context.Context) ([]byte, error) {
		return s.renderMulti(ctx, &st, t, qu, names, ps)
	})
}

// renderMulti computes the answers of names and renders them as the
// response body.
func (s *server) renderMulti(ctx context.Context, st *sketchd.StreamStatus, t query.Target, qu query.Query, names []string, ps []queryParams) ([]byte, error) {
	res, err := s.queryMultiRead(ctx, t, qu, names)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, rs := range res {
		for _, g := range rs.Groups {
			n += len(g.Windows)
		}
	}
	if n > s.limits.MaxOutputWindows {
		return nil, &query.LimitError{Limit: "max_output_windows", Max: int64(s.limits.MaxOutputWindows), Got: int64(n)}
	}
	out := multiJSON{Stream: st.Spec.Name, Results: make([]*resultJSON, 0, len(res))}
	for i, rs := range res {
		rj, err := renderResult(st, rs, &ps[i], s.windows)
		if err != nil {
			return nil, err
		}
		out.Keys = rs.Keys
		out.Results = append(out.Results, rj)
	}
	return encodeMulti(ctx, &out)
}

// prepareMulti resolves the stream and the aggregates of a multi-aggregate
// query and parses the parameters once per aggregate (a kind's parameters
// apply to every aggregate of that kind; cms top defaults to each one's
// top_k).
func (s *server) prepareMulti(r *http.Request) (sketchd.StreamStatus, []string, []queryParams, error) {
	st, err := s.stream(r)
	if err != nil {
		return st, nil, nil, err
	}
	v, err := s.queryValues(r)
	if err != nil {
		return st, nil, nil, err
	}
	names, err := splitList(v, "aggregate", len(st.Spec.Aggregates))
	if err != nil {
		return st, nil, nil, err
	}
	if len(names) == 0 {
		return st, nil, nil, paramError("aggregate", "name the aggregates to answer: aggregate=users&aggregate=latency (or aggregate=users,latency)")
	}
	kinds := map[sketchd.AggregateKind]bool{}
	for i, n := range names {
		agg, ok := st.Spec.Aggregates[n]
		if !ok {
			return st, nil, nil, fmt.Errorf("stream %q: %w %q", st.Spec.Name, query.ErrUnknownAggregate, n)
		}
		if slices.Contains(names[:i], n) {
			return st, nil, nil, paramError("aggregate", "%q listed twice", n)
		}
		kinds[agg.Sketch] = true
	}
	if err := checkMultiParams(v, kinds); err != nil {
		return st, nil, nil, err
	}
	common := url.Values{}
	for k, vals := range v {
		if k != "aggregate" && len(paramKinds(k)) == 0 {
			common[k] = vals
		}
	}
	ps := make([]queryParams, len(names))
	for i, n := range names {
		agg := st.Spec.Aggregates[n]
		own := url.Values{}
		for k, vals := range v {
			if slices.Contains(paramKinds(k), agg.Sketch) {
				own[k] = vals
			}
		}
		for k, vals := range common {
			own[k] = vals
		}
		if ps[i], err = s.parseQuery(own, epQuery, &st.Spec, agg); err != nil {
			return st, nil, nil, err
		}
	}
	return st, names, ps, s.checkSliding(&ps[0], int64(st.Spec.Granularity))
}

// checkMultiParams rejects a kind parameter that no aggregate asked for is
// of, and anything the query endpoint would not take (order_by and limit
// rank the groups of one aggregate: they are for its own endpoint).
func checkMultiParams(v url.Values, kinds map[sketchd.AggregateKind]bool) error {
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if want := paramKinds(k); len(want) > 0 && !slices.ContainsFunc(want, func(w sketchd.AggregateKind) bool { return kinds[w] }) {
			return paramError(k, "does not apply to any aggregate asked for (it is for %s)", joinKinds(want))
		}
		if k == "order_by" || k == "limit" {
			return paramError(k, "ranks the groups of one aggregate: use /v1/streams/{stream}/aggregates/{aggregate}")
		}
	}
	return nil
}
