package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/sketchd/sketchd"
)

type resvT struct {
	Groups []struct {
		Key     map[string]string `json:"key"`
		Windows []struct {
			Events uint64 `json:"events"`
			reservoirAnswer
		} `json:"windows"`
	} `json:"groups"`
}

// TestReservoirStrataAndSeed: each group's window states its population,
// the stored and returned sample sizes and the inclusion probability; a
// seed picks a reproducible subsample of the stored sample (real Badger,
// real router).
func TestReservoirStrataAndSeed(t *testing.T) {
	f := newStoreFixture(t)
	base := join(rangeQuery(subFrom, subTo), "group_by=country")
	var full, s7a, s7b, s8, plain resvT
	f.getJSON(t, aggPath+"sample?"+base, &full)
	f.getJSON(t, aggPath+"sample?"+join(base, "n=4", "seed=7"), &s7a)
	f.getJSON(t, aggPath+"sample?"+join(base, "n=4", "seed=7"), &s7b)
	f.getJSON(t, aggPath+"sample?"+join(base, "n=4", "seed=8"), &s8)
	f.getJSON(t, aggPath+"sample?"+join(base, "n=4"), &plain)
	differs := false
	for gi, g := range full.Groups {
		w := g.Windows[0]
		want := len(f.truth(subFrom, subTo, func(e *tev) bool { return e.country == g.Key["country"] }))
		if w.Population != uint64(want) || w.Events != uint64(want) || w.Stored != min(16, want) || w.Returned != w.Stored {
			t.Errorf("group %v: population %d, events %d, stored %d, returned %d; want %d events, %d stored",
				g.Key, w.Population, w.Events, w.Stored, w.Returned, want, min(16, want))
		}
		in := map[string]bool{}
		for _, it := range w.Sample {
			in[string(it)] = true
		}
		a, b, c, p := s7a.Groups[gi].Windows[0], s7b.Groups[gi].Windows[0], s8.Groups[gi].Windows[0], plain.Groups[gi].Windows[0]
		for _, x := range []struct {
			name string
			ans  reservoirAnswer
		}{{"seed 7", a.reservoirAnswer}, {"seed 8", c.reservoirAnswer}, {"no seed", p.reservoirAnswer}} {
			if len(x.ans.Sample) != 4 || x.ans.Returned != 4 || x.ans.Stored != w.Stored {
				t.Fatalf("%s: %d items, returned %d, stored %d", x.name, len(x.ans.Sample), x.ans.Returned, x.ans.Stored)
			}
			if x.ans.InclusionProbability == nil || *x.ans.InclusionProbability != 4/float64(want) {
				t.Errorf("%s: inclusion probability %v, want 4/%d", x.name, x.ans.InclusionProbability, want)
			}
			for _, it := range x.ans.Sample {
				if !in[string(it)] {
					t.Errorf("%s: item %s is not in the stored sample", x.name, it)
				}
			}
		}
		if a.Seed == nil || *a.Seed != 7 || p.Seed != nil {
			t.Errorf("seed echoed %v / %v", a.Seed, p.Seed)
		}
		if !equalSamples(a.Sample, b.Sample) {
			t.Errorf("group %v: seed 7 gave different subsamples", g.Key)
		}
		if !equalSamples(p.Sample, w.Sample[:4]) {
			t.Errorf("group %v: without a seed, n=4 is not the first 4 of the sample", g.Key)
		}
		differs = differs || !equalSamples(a.Sample, c.Sample)
	}
	if !differs {
		t.Error("seeds 7 and 8 picked the same subsample in every group")
	}
	for _, q := range []string{"seed=-1", "seed=x", "seed=1&seed=2"} {
		if r := f.get(t, aggPath+"sample?"+q); r.status != 400 || r.problem(t).Parameter != "seed" {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	if _, err := parseSeed(url.Values{"seed": {"1"}}, sketchd.Aggregate{Sketch: sketchd.KindReservoir, Weight: "w"}); err == nil {
		t.Error("seed on a weighted reservoir accepted")
	}
}

func equalSamples(a, b []json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
