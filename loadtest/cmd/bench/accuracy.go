package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sketchd/sketchd/internal/gen"
)

// Answer is the part of a query answer the accuracy check reads.
type Answer struct {
	Groups []struct {
		Key     map[string]string `json:"key"`
		Windows []Window          `json:"windows"`
	} `json:"groups"`
}

// Window is one window of an answer, of any kind.
type Window struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Events uint64    `json:"events"`
	// hll
	Distinct *struct {
		Estimate float64 `json:"estimate"`
		Lower    float64 `json:"lower"`
		Upper    float64 `json:"upper"`
		RSE      float64 `json:"relative_standard_error"`
	} `json:"distinct"`
	// cms
	Total      uint64 `json:"total"`
	ErrorBound uint64 `json:"error_bound"`
	Top        []Freq `json:"top"`
	Items      []Freq `json:"items"`
	// tdigest, ddsketch
	Count     uint64 `json:"count"`
	Quantiles []struct {
		Q         float64  `json:"q"`
		Value     *float64 `json:"value"`
		RankError *float64 `json:"rank_error"`
	} `json:"quantiles"`
	// ddsketch
	RelativeAccuracy *float64 `json:"relative_accuracy"`
	TDigestExtra
	// reservoir
	Population *uint64 `json:"population"`
}

// Freq is a count-min item answer.
type Freq struct {
	Item     string `json:"item"`
	Estimate uint64 `json:"estimate"`
	Lower    uint64 `json:"lower"`
	Upper    uint64 `json:"upper"`
}

// Accuracy compares answers with the generator's truth.
type Accuracy struct {
	Windows     int `json:"windows"`      // (window, group) answers compared
	EventsExact int `json:"events_exact"` // of which the exact event count matched
	Missing     int `json:"missing"`      // (window, group) with events in the truth but absent from the answer
	// HLL: relative error |estimate − true| / true; within: true in
	// [lower, upper] (stated 95%).
	HLL    Stat    `json:"hll"`
	HLLRSE float64 `json:"hll_rse"` // the stated relative standard error
	// HLLLarge is HLL restricted to true distinct counts ≥ 10,000, where
	// the sketch estimates (small sets are counted exactly).
	HLLLarge Stat `json:"hll_large"`
	// CMS: overestimate / error_bound (εN); within: overestimate ≤
	// error_bound (stated 1−δ). Under counts estimates below the truth
	// (never allowed); MaxOver is the largest overestimate.
	CMS      Stat   `json:"cms"`
	CMSUnder int    `json:"cms_under"`
	MaxOver  uint64 `json:"cms_max_over"`
	// TopK: recall of the true top k (ties at the k-th count included).
	TopK Stat `json:"topk"`
	K    int  `json:"k"`
	// Quantile: rank error |q − rank(value)| as a fraction of the count;
	// within: ≤ the answer's rank_error.
	Quantile Stat `json:"quantile"`
	// MaxRankBound is the largest rank_error the answers stated, and
	// RankBounds their sum (for the mean).
	MaxRankBound float64 `json:"max_rank_bound"`
	RankBounds   float64 `json:"rank_bounds"`
	// Rank: |fraction − true fraction| of rank= answers; within: the truth
	// in [lower, upper]. Trimmed and Mean: relative error of trim= answers
	// and of the mean; within: the truth in [lower, upper].
	Rank    Stat `json:"rank"`
	Trimmed Stat `json:"trimmed_mean"`
	Mean    Stat `json:"mean"`
	// Multi: windows of a multi-aggregate answer (GET /v1/streams/{s}/query)
	// compared with the single-aggregate answers; within: equal.
	Multi Stat `json:"multi"`
	// Reservoir: population equal to the exact event count.
	Reservoir Stat `json:"reservoir"`
	// Theta: as HLL (its distinct answer has the same members).
	Theta Stat `json:"theta"`
	// DDSketch: relative error |value − x| / |x| against the exact value x
	// of rank ⌊q(n−1)⌋; within: ≤ the answer's relative_accuracy (α).
	DDSketch Stat    `json:"ddsketch"`
	DDAlpha  float64 `json:"ddsketch_alpha"`
	// Worst says, per kind, which answer missed its bound by the most.
	Worst  map[string]string `json:"worst,omitempty"`
	excess map[string]float64
}

// miss records an answer outside its bound by excess.
func (a *Accuracy) miss(kind string, excess float64, w Window, key map[string]string, what string) {
	if a.Worst == nil {
		a.Worst, a.excess = map[string]string{}, map[string]float64{}
	}
	if prev, ok := a.excess[kind]; ok && prev >= excess {
		return
	}
	a.excess[kind] = excess
	a.Worst[kind] = fmt.Sprintf("%s, window %s..%s (%d events), key %v", what,
		w.Start.UTC().Format("01-02 15:04"), w.End.UTC().Format("15:04"), w.Events, key)
}

// filter selects the truth a window of a group answers.
type filter struct {
	from, to time.Time
	where    map[string][]string // dimension → values (OR); dimensions AND
	key      map[string]string   // the group's key
}

func (f filter) keep(k gen.PaneKey) bool {
	if k.Start < f.from.UnixNano() || k.Start >= f.to.UnixNano() {
		return false
	}
	dims := map[string]string{"country": k.Country, "device": k.Device}
	for d, vs := range f.where {
		if !slices.Contains(vs, dims[d]) {
			return false
		}
	}
	for d, v := range f.key {
		if dims[d] != v {
			return false
		}
	}
	return true
}

func (f filter) id() string {
	return fmt.Sprint(f.from.Unix(), f.to.Unix(), f.where, f.key)
}

// truthCache summarizes the truth once per filter.
type truthCache struct {
	t  *gen.Truth
	m  map[string]gen.Summary
	qs []float64
}

func (c *truthCache) get(f filter) gen.Summary {
	id := f.id()
	s, ok := c.m[id]
	if !ok {
		s = c.t.Summarize(f.keep, c.qs...)
		c.m[id] = s
	}
	return s
}

// Compare checks one answer of the given kind against the truth; where is
// the query's where filter. k is the top-k size for recall.
func (a *Accuracy) Compare(kind string, ans Answer, where map[string][]string, tc *truthCache, k int) {
	a.K = k
	for _, g := range ans.Groups {
		for _, w := range g.Windows {
			tr := tc.get(filter{from: w.Start, to: w.End, where: where, key: g.Key})
			a.compareWindow(kind, w, g.Key, tr, k)
		}
	}
}

func (a *Accuracy) compareWindow(kind string, w Window, key map[string]string, tr gen.Summary, k int) {
	if w.Events == 0 && tr.Events == 0 {
		return
	}
	a.Windows++
	if w.Events == tr.Events {
		a.EventsExact++
	}
	switch kind {
	case "hll":
		if w.Distinct == nil || tr.Distinct == 0 {
			return
		}
		d := float64(tr.Distinct)
		rel, in := math.Abs(w.Distinct.Estimate-d)/d, d >= w.Distinct.Lower && d <= w.Distinct.Upper
		a.HLL.Add(rel, in)
		if !in {
			a.miss("hll", rel, w, key, fmt.Sprintf("true distinct %d outside [%.0f, %.0f] (estimate %.0f)",
				tr.Distinct, w.Distinct.Lower, w.Distinct.Upper, w.Distinct.Estimate))
		}
		if tr.Distinct >= 10_000 {
			a.HLLLarge.Add(rel, in)
		}
		a.HLLRSE = max(a.HLLRSE, w.Distinct.RSE)
	case "cms":
		check := func(f Freq) {
			t := tr.URLs[f.Item]
			if f.Estimate < t {
				a.CMSUnder++
				a.CMS.Add(0, false)
				return
			}
			over := f.Estimate - t
			a.MaxOver = max(a.MaxOver, over)
			ratio := 0.0
			if w.ErrorBound > 0 {
				ratio = float64(over) / float64(w.ErrorBound)
			} else if over > 0 {
				ratio = math.Inf(1)
			}
			a.CMS.Add(ratio, over <= w.ErrorBound)
			if over > w.ErrorBound {
				a.miss("cms", ratio, w, key, fmt.Sprintf("item %s: estimate %d, true %d, over by more than εN = %d",
					f.Item, f.Estimate, t, w.ErrorBound))
			}
		}
		for _, f := range w.Top {
			check(f)
		}
		for _, f := range w.Items {
			check(f)
		}
		if len(w.Top) > 0 {
			r := Recall(w.Top, tr, k)
			a.TopK.Add(r, r == 1)
		}
	case "tdigest":
		for _, q := range w.Quantiles {
			if q.Value == nil || q.RankError == nil || len(tr.Latencies) == 0 {
				continue
			}
			e := RankError(tr, q.Q, *q.Value)
			a.Quantile.Add(e, e <= *q.RankError+1e-9)
			if e > *q.RankError+1e-9 {
				a.miss("tdigest", e-*q.RankError, w, key, fmt.Sprintf("q=%g: value %g has rank error %.5f, stated %.5f",
					q.Q, *q.Value, e, *q.RankError))
			}
			a.MaxRankBound = max(a.MaxRankBound, *q.RankError)
			a.RankBounds += *q.RankError
		}
		a.compareTDigestExtra(w, key, tr)
	case "theta":
		if w.Distinct == nil || tr.Distinct == 0 {
			return
		}
		d := float64(tr.Distinct)
		rel, in := math.Abs(w.Distinct.Estimate-d)/d, d >= w.Distinct.Lower && d <= w.Distinct.Upper
		a.Theta.Add(rel, in)
		if !in {
			a.miss("theta", rel, w, key, fmt.Sprintf("true distinct %d outside [%.0f, %.0f] (estimate %.0f)",
				tr.Distinct, w.Distinct.Lower, w.Distinct.Upper, w.Distinct.Estimate))
		}
	case "ddsketch":
		if w.RelativeAccuracy == nil || len(tr.Latencies) == 0 {
			return
		}
		alpha := *w.RelativeAccuracy
		a.DDAlpha = alpha
		for _, q := range w.Quantiles {
			if q.Value == nil {
				continue
			}
			x := tr.Latencies[int(q.Q*float64(len(tr.Latencies)-1))]
			rel := math.Abs(*q.Value - x)
			if x != 0 {
				rel /= math.Abs(x)
			}
			in := rel <= alpha*(1+1e-9)
			a.DDSketch.Add(rel, in)
			if !in {
				a.miss("ddsketch", rel-alpha, w, key, fmt.Sprintf("q=%g: value %g, exact %g: relative error %.5f > α %g", q.Q, *q.Value, x, rel, alpha))
			}
		}
	case "reservoir":
		if w.Population != nil {
			a.Reservoir.Add(math.Abs(float64(*w.Population)-float64(tr.Events)), *w.Population == tr.Events)
		}
	}
}

// Recall returns the fraction of the true top k found in the answer's
// first k items. Items tied with the true k-th count all count as top k.
func Recall(top []Freq, tr gen.Summary, k int) float64 {
	want := tr.TopURLs(k)
	if len(want) == 0 {
		return 1
	}
	kth := want[len(want)-1].Count
	hit := 0
	for _, f := range top[:min(k, len(top))] {
		if tr.URLs[f.Item] >= kth {
			hit++
		}
	}
	return float64(min(hit, len(want))) / float64(len(want))
}

// RankError returns how far q is from the range of ranks value v holds in
// the truth: 0 when v is an exact q-quantile, else the distance in
// fractions of the count.
func RankError(tr gen.Summary, q, v float64) float64 {
	below, atOrBelow := tr.Rank(v)
	switch {
	case q < below:
		return below - q
	case q > atOrBelow:
		return q - atOrBelow
	}
	return 0
}

// accuracyPlan is the set of queries the accuracy check makes over the
// backfilled range [from, to) (whole hours).
func accuracyPlan(stream string, from, to time.Time) []accQuery {
	rng := "from=" + strconv.FormatInt(from.Unix(), 10) + "&to=" + strconv.FormatInt(to.Unix(), 10)
	items := []string{}
	for _, i := range []int{0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100, 250, 500, 1000, 2500, 4000} {
		items = append(items, "item="+url.QueryEscape("/p/"+strconv.Itoa(i)))
	}
	it := strings.Join(items, "&")
	const qs = "q=0.01,0.1,0.5,0.9,0.99,0.999&rank=10,30,55,100,200,500&trim=0,0.01,0.05,0.25"
	const ddqs = "q=0.01,0.1,0.5,0.9,0.99,0.999" // rank= and trim= are t-digest's
	a := "/v1/streams/" + stream + "/aggregates/"
	mobile := map[string][]string{"device": {"mobile"}}
	defr := map[string][]string{"country": {"DE", "FR"}}
	// 30 one-minute panes, every key on its own.
	paneTo := from.Add(30 * time.Minute)
	pane := "from=" + strconv.FormatInt(from.Unix(), 10) + "&to=" + strconv.FormatInt(paneTo.Unix(), 10) + "&step=1m&group_by=country,device"
	return []accQuery{
		{"hll", "per hour, per country", a + "users?" + rng + "&step=1h&group_by=country", nil},
		{"cms", "per hour, per country", a + "urls?" + rng + "&step=1h&group_by=country&top=10&" + it, nil},
		{"tdigest", "per hour, per country", a + "latency?" + rng + "&step=1h&group_by=country&" + qs, nil},
		{"reservoir", "per hour, per country", a + "sample?" + rng + "&step=1h&group_by=country&n=1", nil},
		{"hll", "per hour, every key", a + "users?" + rng + "&step=1h", nil},
		{"hll", "24h, every key", a + "users?" + rng, nil},
		{"tdigest", "per hour, every key", a + "latency?" + rng + "&step=1h&" + qs, nil},
		{"hll", "24h, where device=mobile", a + "users?" + rng + "&where=device=mobile", mobile},
		{"cms", "24h, where device=mobile", a + "urls?" + rng + "&where=device=mobile&top=10&" + it, mobile},
		{"tdigest", "24h, where device=mobile", a + "latency?" + rng + "&where=device=mobile&" + qs, mobile},
		{"hll", "24h, country in (DE, FR), per device", a + "users?" + rng + "&where=country=DE&where=country=FR&group_by=device", defr},
		{"cms", "24h, country in (DE, FR), per device", a + "urls?" + rng + "&where=country=DE&where=country=FR&group_by=device&top=10&" + it, defr},
		{"tdigest", "24h, country in (DE, FR), per device", a + "latency?" + rng + "&where=country=DE&where=country=FR&group_by=device&" + qs, defr},
		{"hll", "1-minute panes, single keys", a + "users?" + pane, nil},
		{"cms", "1-minute panes, single keys", a + "urls?" + pane + "&top=10", nil},
		{"tdigest", "1-minute panes, single keys", a + "latency?" + pane + "&q=0.5,0.9", nil},
		{"theta", "per hour, per country", a + "visitors?" + rng + "&step=1h&group_by=country", nil},
		{"theta", "24h, where device=mobile", a + "visitors?" + rng + "&where=device=mobile", mobile},
		{"theta", "1-minute panes, single keys", a + "visitors?" + pane, nil},
		{"ddsketch", "per hour, per country", a + "p99?" + rng + "&step=1h&group_by=country&" + ddqs, nil},
		{"ddsketch", "24h, country in (DE, FR), per device", a + "p99?" + rng + "&where=country=DE&where=country=FR&group_by=device&" + ddqs, defr},
		{"ddsketch", "1-minute panes, single keys", a + "p99?" + pane + "&q=0.5,0.9", nil},
	}
}

type accQuery struct {
	kind, what, path string
	where            map[string][]string
}

// checkAccuracy runs the accuracy plan against sketchd and the truth.
func checkAccuracy(ctx context.Context, c *client, stream string, t *gen.Truth, from, to time.Time) (Accuracy, []string, error) {
	var acc Accuracy
	tc := &truthCache{t: t, m: map[string]gen.Summary{}}
	var cmds []string
	firstWindows := 0
	plan := accuracyPlan(stream, from, to)
	raws := make([]json.RawMessage, len(plan))
	for i, q := range plan {
		var ans Answer
		if err := c.getJSON(ctx, q.path, &raws[i]); err != nil {
			return acc, cmds, fmt.Errorf("accuracy query %s (%s): %w", q.kind, q.what, err)
		}
		if err := json.Unmarshal(raws[i], &ans); err != nil {
			return acc, cmds, fmt.Errorf("accuracy query %s (%s): %w", q.kind, q.what, err)
		}
		cmds = append(cmds, q.path)
		n := acc.Windows
		acc.Compare(q.kind, ans, q.where, tc, 10)
		if i == 0 {
			firstWindows = acc.Windows - n
		}
	}
	// Every non-empty (hour, country) of the truth must be answered: the
	// first query of the plan is per hour and country.
	type hourCountry struct {
		hour    int64
		country string
	}
	expected := map[hourCountry]bool{}
	for k := range t.Panes {
		if k.Start >= from.UnixNano() && k.Start < to.UnixNano() {
			h := (k.Start - from.UnixNano()) / int64(time.Hour)
			expected[hourCountry{h, k.Country}] = true
		}
	}
	acc.Missing = len(expected) - firstWindows
	path, err := checkMulti(ctx, c, stream, plan, raws, &acc)
	cmds = append(cmds, path)
	return acc, cmds, err
}
