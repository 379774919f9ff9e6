package api

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestQueryTDigestRankMeanTrim: rank, cdf, mean and trimmed mean through
// the real router over a real Badger store, against the exact answers of
// the generated events (seed 42), per group.
func TestQueryTDigestRankMeanTrim(t *testing.T) {
	f := newStoreFixture(t)
	xs := []float64{5, 30, 100, 250, 600}
	trims := []float64{0, 0.05, 0.25}
	var xsStr, trStr []string
	for _, x := range xs {
		xsStr = append(xsStr, fmt.Sprint(x))
	}
	for _, tr := range trims {
		trStr = append(trStr, fmt.Sprint(tr))
	}
	for _, gb := range []string{"", "&group_by=country,device"} {
		var res struct {
			Groups []struct {
				Key     map[string]string `json:"key"`
				Windows []struct {
					Count               uint64        `json:"count"`
					Mean                meanJSON      `json:"mean"`
					RankErrorConfidence float64       `json:"rank_error_confidence"`
					Ranks               []rankJSON    `json:"ranks"`
					CDF                 []cdfJSON     `json:"cdf"`
					TrimmedMeans        []trimmedJSON `json:"trimmed_means"`
				} `json:"windows"`
			} `json:"groups"`
		}
		f.getJSON(t, aggPath+"latency?"+join(rangeQuery(fullFrom, fullTo), "rank="+strings.Join(xsStr, ","),
			"cdf="+strings.Join(xsStr, ","), "trim="+strings.Join(trStr, ","))+gb, &res)
		checked := 0
		for _, g := range res.Groups {
			w := g.Windows[0]
			var lats []float64
			for _, e := range f.truth(fullFrom, fullTo, func(e *tev) bool {
				return (g.Key["country"] == "" || e.country == g.Key["country"]) && (g.Key["device"] == "" || e.device == g.Key["device"])
			}) {
				lats = append(lats, e.lat)
			}
			slices.Sort(lats)
			if w.Count != uint64(len(lats)) || w.RankErrorConfidence != 0.99 {
				t.Fatalf("group %v: count %d, want %d; confidence %g", g.Key, w.Count, len(lats), w.RankErrorConfidence)
			}
			var sum float64
			for _, v := range lats {
				sum += v
			}
			if m := sum / float64(len(lats)); *w.Mean.Lower > m*(1+1e-12) || *w.Mean.Upper < m*(1-1e-12) {
				t.Errorf("group %v: mean [%g, %g], exact %g", g.Key, *w.Mean.Lower, *w.Mean.Upper, m)
			}
			for i, x := range xs {
				below := sort.SearchFloat64s(lats, x)
				upTo := sort.Search(len(lats), func(i int) bool { return lats[i] > x })
				truth := (float64(below) + float64(upTo-below)/2) / float64(len(lats))
				r, c := w.Ranks[i], w.CDF[i]
				if r.Value != x || *r.Lower > truth || *r.Upper < truth {
					t.Errorf("group %v: rank(%g) = %g in [%g, %g], exact %g", g.Key, x, *r.Fraction, *r.Lower, *r.Upper, truth)
				}
				if n := float64(len(lats)); float64(*r.CountLower) > truth*n || float64(*r.CountUpper) < truth*n {
					t.Errorf("group %v: rank count [%d, %d], exact %g", g.Key, *r.CountLower, *r.CountUpper, truth*n)
				}
				if *c.P != *r.Fraction || *c.Lower != *r.Lower || *c.Upper != *r.Upper {
					t.Errorf("cdf %+v differs from rank %+v", c, r)
				}
				checked++
			}
			for i, tr := range trims {
				lo, hi := tr*float64(len(lats)), (1-tr)*float64(len(lats))
				var s, wt float64
				for j, v := range lats {
					l, r := max(float64(j), lo), min(float64(j+1), hi)
					if r > l {
						s += v * (r - l)
						wt += r - l
					}
				}
				got, truth := w.TrimmedMeans[i], s/wt
				if got.Trim != tr || *got.Lower > truth || *got.Upper < truth {
					t.Errorf("group %v: trimmed mean %g: %g in [%g, %g], exact %g", g.Key, tr, *got.Value, *got.Lower, *got.Upper, truth)
				}
				if math.Abs(*got.Value-truth) > 0.05*truth {
					t.Errorf("group %v: trimmed mean %g: %g, exact %g: off by more than 5%%", g.Key, tr, *got.Value, truth)
				}
			}
		}
		if checked == 0 {
			t.Fatal("nothing checked")
		}
	}
	r := f.get(t, aggPath+"latency?trim=0.5")
	if r.status != 400 || r.problem(t).Parameter != "trim" {
		t.Errorf("trim=0.5: %d %s", r.status, r.body)
	}
}
