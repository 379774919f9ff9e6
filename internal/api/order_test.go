package api

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

type rankedResT struct {
	Groups []struct {
		Key map[string]string `json:"key"`
	} `json:"groups"`
	Ranking *rankingJSON `json:"ranking"`
}

func keyOf(k map[string]string) string { return k["country"] + "/" + k["device"] }

// TestOrderByLimit: order_by and limit through the real router over a real
// Badger store, against a sort of the exact values of the generated events.
// The kept set equals the exact top k, except that groups on either side of
// the cut may swap only when the answer flags them as ambiguous.
func TestOrderByLimit(t *testing.T) {
	f := newStoreFixture(t)
	type group struct {
		key   string
		lats  []float64
		users map[string]bool
		n     int
	}
	exact := map[string]*group{}
	for _, e := range f.truth(fullFrom, fullTo, nil) {
		k := e.country + "/" + e.device
		g := exact[k]
		if g == nil {
			g = &group{key: k, users: map[string]bool{}}
			exact[k] = g
		}
		g.n++
		g.users[e.user] = true
		g.lats = append(g.lats, e.lat)
	}
	quantile := func(v []float64, q float64) float64 {
		s := slices.Sorted(slices.Values(v))
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	mean := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	tests := []struct {
		agg, orderBy string
		limit        int
		asc          bool
		value        func(*group) float64
	}{
		{"users", "events", 3, false, func(g *group) float64 { return float64(g.n) }},
		{"users", "events:asc", 2, true, func(g *group) float64 { return float64(g.n) }},
		{"users", "distinct", 3, false, func(g *group) float64 { return float64(len(g.users)) }},
		{"latency", "q0.99", 2, false, func(g *group) float64 { return quantile(g.lats, 0.99) }},
		{"latency", "q0.5:asc", 4, true, func(g *group) float64 { return quantile(g.lats, 0.5) }},
		{"latency", "mean", 1, false, func(g *group) float64 { return mean(g.lats) }},
		{"latency", "max", 5, false, func(g *group) float64 { return slices.Max(g.lats) }},
		{"urls", "total", 6, false, func(g *group) float64 { return float64(g.n) }},
	}
	ambiguousSeen := false
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s by %s limit %d", tt.agg, tt.orderBy, tt.limit), func(t *testing.T) {
			var res rankedResT
			f.getJSON(t, aggPath+tt.agg+"?"+join(rangeQuery(fullFrom, fullTo), "group_by=country,device",
				"order_by="+tt.orderBy, fmt.Sprint("limit=", tt.limit)), &res)
			rk := res.Ranking
			if rk == nil || rk.Groups != len(exact) || rk.Limit == nil || *rk.Limit != tt.limit || len(rk.Values) != len(res.Groups) {
				t.Fatalf("ranking %+v, %d groups", rk, len(res.Groups))
			}
			if want := min(tt.limit, len(exact)); len(res.Groups) != want {
				t.Fatalf("%d groups, want %d", len(res.Groups), want)
			}
			// The exact ranking.
			all := make([]*group, 0, len(exact))
			for _, g := range exact {
				all = append(all, g)
			}
			slices.SortFunc(all, func(a, b *group) int {
				va, vb := tt.value(a), tt.value(b)
				if tt.asc {
					va, vb = vb, va
				}
				switch {
				case va > vb:
					return -1
				case va < vb:
					return 1
				}
				return 0
			})
			want := map[string]bool{}
			for _, g := range all[:tt.limit] {
				want[g.key] = true
			}
			amb := map[string]bool{}
			for _, k := range rk.AmbiguousGroups {
				amb[keyOf(k)] = true
			}
			ambiguousSeen = ambiguousSeen || rk.RankAmbiguous
			got := map[string]bool{}
			for i, g := range res.Groups {
				k := keyOf(g.Key)
				got[k] = true
				v := rk.Values[i]
				if x := tt.value(exact[k]); *v.Lower > x || *v.Upper < x {
					t.Errorf("group %s: ranked by %g in [%g, %g], exact %g", k, *v.Value, *v.Lower, *v.Upper, x)
				}
				if i > 0 && ((!tt.asc && *v.Value > *rk.Values[i-1].Value) || (tt.asc && *v.Value < *rk.Values[i-1].Value)) {
					t.Errorf("group %d out of order: %g after %g", i, *v.Value, *rk.Values[i-1].Value)
				}
			}
			// The exact value at the cut: groups tied there may go either way.
			kth := tt.value(all[tt.limit-1])
			for k := range want {
				if !got[k] && !amb[k] && tt.value(exact[k]) != kth {
					t.Errorf("exact top %d has %s, the answer leaves it out without flagging it (ambiguous %v)", tt.limit, k, rk.AmbiguousGroups)
				}
			}
			for k := range got {
				if !want[k] && !amb[k] && tt.value(exact[k]) != kth {
					t.Errorf("the answer keeps %s, not in the exact top %d, without flagging it", k, tt.limit)
				}
			}
			if !rk.RankAmbiguous && len(rk.AmbiguousGroups) != 0 {
				t.Errorf("ambiguous groups %v without rank_ambiguous", rk.AmbiguousGroups)
			}
		})
	}
	// Six groups of ~3,300 events over 700 users all hold nearly every
	// user: their distinct-count bounds overlap, and the answer must say so.
	if !ambiguousSeen {
		t.Error("no ranking was flagged ambiguous, though distinct counts of every group overlap")
	}
}

// TestOrderByErrors: what order_by and limit refuse.
func TestOrderByErrors(t *testing.T) {
	f := newStoreFixture(t)
	tests := []struct{ path, param string }{
		{"users?group_by=country&order_by=distinct&step=10m", "order_by"},
		{"users?group_by=country&limit=2", "limit"},
		{"users?group_by=country&order_by=mean", "order_by"},
		{"latency?group_by=country&order_by=q2", "order_by"},
		{"latency?group_by=country&order_by=count:up", "order_by"},
		{"latency?group_by=country&order_by=count&limit=0", "limit"},
		{"users/sketch?order_by=distinct", "order_by"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := f.get(t, aggPath+tt.path)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if p := r.problem(t); p.Parameter != tt.param {
				t.Errorf("parameter %q, want %q: %s", p.Parameter, tt.param, p.Detail)
			}
		})
	}
}
