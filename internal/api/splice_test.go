package api

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// TestSplicedEqualsMarshal: the spliced bodies of single and
// multi-aggregate answers (every kind, groups or none, an empty group
// list, a ranking, pretty or not, windows from the memo or rendered) are
// byte-equal to encoding/json's.
func TestSplicedEqualsMarshal(t *testing.T) {
	f := newFixture(t)
	q := newQuerier(t, sharedStoreFor(t), query.Options{})
	tg := target(&f.status)
	memo := newAnswerCache(8 << 20)
	from, to := t0.UnixNano(), t0.Add(fixtureSpan).UnixNano()
	m := int64(time.Minute)
	cases := []struct {
		agg     string
		qu      query.Query
		p       queryParams
		ranking bool
	}{
		{"latency", query.Query{From: from, To: to, Step: 5 * m, GroupBy: []string{"country"}}, queryParams{q: []float64{0.5, 0.99}, n: -1}, false},
		{"users", query.Query{From: from, To: to, GroupBy: []string{"device"}}, queryParams{n: -1}, true},
		{"urls", query.Query{From: from, To: to, Step: 10 * m}, queryParams{top: 3, items: []string{"/p/1", "<&>"}, n: -1}, false},
		{"sample", query.Query{From: from, To: to, Step: 30 * m, GroupBy: []string{"country", "device"}}, queryParams{n: 2}, false},
		{"users", query.Query{From: from, To: to, Step: 5 * m, Filters: []query.Filter{{Dim: "country", Op: query.OpIn, Values: []string{"nowhere"}}}}, queryParams{n: -1}, false},
	}
	var multi multiJSON
	for round := range 2 { // the second round's windows come from the memo
		for _, c := range cases {
			qu := c.qu
			qu.Aggregate = c.agg
			res, err := q.QueryShared(t.Context(), tg, qu)
			if err != nil {
				t.Fatal(err)
			}
			p := c.p
			p.from, p.to, p.step, p.window, p.groupBy, p.filters = qu.From, qu.To, qu.Step, qu.Step, qu.GroupBy, qu.Filters
			out, err := renderResult(&f.status, res, &p, memo)
			if err != nil {
				t.Fatal(err)
			}
			if c.ranking {
				limit := 1
				out.Ranking = &rankingJSON{OrderBy: "distinct", Order: "desc", Limit: &limit, Groups: 2, Note: "a <note> & more"}
			}
			if round == 1 {
				multi.Results = append(multi.Results, out)
				multi.Keys = out.Keys
			}
			for _, pretty := range []bool{false, true} {
				r := httptest.NewRequest("GET", "/", nil)
				r = r.WithContext(context.WithValue(r.Context(), prettyKey{}, pretty))
				want, err := marshalJSON(r, out)
				if err != nil {
					t.Fatal(err)
				}
				got, err := encodeResult(r.Context(), out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, append(want, '\n')) {
					t.Fatalf("round %d %s pretty %v:\nspliced %s\nmarshal %s", round, c.agg, pretty, got, want)
				}
			}
		}
	}
	multi.Stream = f.status.Spec.Name
	for _, mj := range []multiJSON{multi, {Stream: "s"}} {
		r := httptest.NewRequest("GET", "/", nil)
		want, err := marshalJSON(r, mj)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeMulti(r.Context(), &mj)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(want, '\n')) {
			t.Fatalf("multi:\nspliced %s\nmarshal %s", got, want)
		}
	}
}
