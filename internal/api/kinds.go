package api

import (
	"encoding/json"
	"math"
	"net/url"
	"sync"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// kindAPI is how the API serves one sketch kind: the query parameters only
// that kind takes, how they parse, and how a window's sketch renders.
// kindAPIs is the one place in the API that names kinds: a new kind adds an
// entry here and its answer type to answers. (Parameters and answers go by
// value: a pointer handed to a function value would move to the heap, once
// per request or per window.)
type kindAPI struct {
	params []string // query parameters only this kind takes
	// parse returns p with the kind's params read in (nil: it takes none).
	parse func(s *server, v url.Values, agg sketchd.Aggregate, p queryParams) (queryParams, error)
	// render returns the kind's answer; false if sk is not of the kind.
	render func(sk sketch.Sketch, p queryParams) (answers, bool)
}

// answers holds the answer of a window: the members of its kind are set,
// and their fields appear inline in the window's JSON. A field name two
// kinds answer lives in one member that both set (encoding/json drops a
// name two embedded structs give at the same depth): hllAnswer's distinct
// (hll, theta), quantileAnswer's count, min, max, quantiles (tdigest,
// ddsketch).
type answers struct {
	*hllAnswer
	*cmsAnswer
	*quantileAnswer
	*tdigestAnswer
	*reservoirAnswer
	*thetaAnswer
	*ddsketchAnswer
}

// kindAPIs holds an entry for every kind of the sketch registry
// (TestKindAPIsCoverRegistry).
var kindAPIs = map[sketch.Kind]kindAPI{
	sketch.KindHLL: {
		render: renderAnswer(hllAnswerOf, func(a *hllAnswer) answers { return answers{hllAnswer: a} }),
	},
	sketch.KindCMS: {
		params: []string{"top", "item"}, parse: parseCMS,
		render: renderAnswer(cmsAnswerOf, func(a *cmsAnswer) answers { return answers{cmsAnswer: a} }),
	},
	sketch.KindTDigest: {
		params: []string{"q", "cdf", "rank", "trim"}, parse: parseTDigest,
		render: renderAnswer(tdigestAnswerOf, func(a *tdigestAnswer) answers { return answers{quantileAnswer: &a.quantileAnswer, tdigestAnswer: a} }),
	},
	sketch.KindReservoir: {
		params: []string{"n", "seed"}, parse: parseReservoir,
		render: renderAnswer(reservoirAnswerOf, func(a *reservoirAnswer) answers { return answers{reservoirAnswer: a} }),
	},
	sketch.KindTheta: {
		render: renderAnswer(thetaAnswerOf, func(a *thetaAnswer) answers { return answers{hllAnswer: &a.hllAnswer, thetaAnswer: a} }),
	},
	sketch.KindDDSketch: {
		params: []string{"q"}, parse: parseDDSketch,
		render: renderAnswer(ddsketchAnswerOf, func(a *ddsketchAnswer) answers { return answers{quantileAnswer: &a.quantileAnswer, ddsketchAnswer: a} }),
	},
}

// kindAPIOf returns the entry of an aggregate's kind.
func kindAPIOf(agg sketchd.Aggregate) (kindAPI, bool) {
	k, ok := sketch.KindNamed(string(agg.Sketch))
	if !ok {
		return kindAPI{}, false
	}
	e, ok := kindAPIs[k.Kind]
	return e, ok
}

// paramKinds returns the kinds that a kind-only query parameter is for, in
// Kind order (none if the parameter is not one): q is for tdigest and
// ddsketch. Every request's parameters ask, so the table is built once;
// callers must not modify the slice.
func paramKinds(name string) []sketchd.AggregateKind { return kindsOfParam()[name] }

// kindsOfParam is paramKinds' table: each kind-only parameter's kinds.
var kindsOfParam = sync.OnceValue(func() map[string][]sketchd.AggregateKind {
	out := map[string][]sketchd.AggregateKind{}
	for _, k := range sketch.Kinds() {
		for _, name := range kindAPIs[k.Kind].params {
			out[name] = append(out[name], sketchd.AggregateKind(k.Name))
		}
	}
	return out
})

// Default quantiles when q is absent.
var defaultQuantiles = []float64{0.5, 0.9, 0.99}

// parseQuantiles reads q, the quantiles both quantile kinds answer
// (defaultQuantiles when absent).
func parseQuantiles(s *server, v url.Values, p queryParams) (queryParams, error) {
	var err error
	if p.q, err = s.parseFloats(v, "q"); err != nil {
		return p, err
	}
	for _, q := range p.q {
		if !(q >= 0 && q <= 1) {
			return p, paramError("q", "quantiles must be in [0, 1], got %g", q)
		}
	}
	if _, ok := v["q"]; !ok {
		p.q = defaultQuantiles
	}
	return p, nil
}

func parseTDigest(s *server, v url.Values, _ sketchd.Aggregate, p queryParams) (queryParams, error) {
	p, err := parseQuantiles(s, v, p)
	if err != nil {
		return p, err
	}
	if p.cdf, err = s.parseFloats(v, "cdf"); err != nil {
		return p, err
	}
	if p.rank, err = s.parseFloats(v, "rank"); err != nil {
		return p, err
	}
	if p.trim, err = s.parseFloats(v, "trim"); err != nil {
		return p, err
	}
	for _, f := range p.trim {
		if !(f >= 0 && f < 0.5) {
			return p, paramError("trim", "the share cut from each end must be in [0, 0.5), got %g", f)
		}
	}
	return p, nil
}

// parseDDSketch reads q as the t-digest does (cdf is the t-digest's only).
func parseDDSketch(s *server, v url.Values, _ sketchd.Aggregate, p queryParams) (queryParams, error) {
	return parseQuantiles(s, v, p)
}

func parseCMS(s *server, v url.Values, agg sketchd.Aggregate, p queryParams) (queryParams, error) {
	agg.Normalize()
	var err error
	if p.top, err = parseInt(v, "top", agg.TopK, 0, s.limits.MaxTop); err != nil {
		return p, err
	}
	p.items = v["item"]
	if len(p.items) > s.limits.MaxItems {
		return p, paramError("item", "at most %d items, got %d", s.limits.MaxItems, len(p.items))
	}
	return p, nil
}

func parseReservoir(s *server, v url.Values, agg sketchd.Aggregate, p queryParams) (queryParams, error) {
	var err error
	if p.n, err = parseInt(v, "n", -1, 0, s.limits.MaxSample); err != nil {
		return p, err
	}
	p.seed, err = parseSeed(v, agg)
	return p, err
}

// renderAnswer adapts a kind's answer function to kindAPI.render: when sk
// is an S, it returns its answer wrapped in answers.
func renderAnswer[S sketch.Sketch, A any](answer func(S, queryParams) A, wrap func(A) answers) func(sketch.Sketch, queryParams) (answers, bool) {
	return func(sk sketch.Sketch, p queryParams) (answers, bool) {
		s, ok := sk.(S)
		if !ok {
			return answers{}, false
		}
		return wrap(answer(s, p)), true
	}
}

func hllAnswerOf(sk *sketch.HLL, _ queryParams) *hllAnswer {
	e := sk.Estimate()
	// Counts are whole: bounds round outward, so that they still cover.
	return &hllAnswer{Distinct: distinctJSON{
		Estimate: finite(e.Estimate), Lower: math.Floor(finite(e.Lower)), Upper: math.Ceil(finite(e.Upper)),
		Confidence: e.Confidence, RSE: finite(e.RSE),
	}}
}

type hllAnswer struct {
	Distinct distinctJSON `json:"distinct"`
}

type distinctJSON struct {
	Estimate   float64 `json:"estimate"`
	Lower      float64 `json:"lower"`
	Upper      float64 `json:"upper"`
	Confidence float64 `json:"confidence"`
	RSE        float64 `json:"relative_standard_error"`
}

type cmsAnswer struct {
	Total      uint64     `json:"total"`
	Epsilon    float64    `json:"epsilon"`
	Confidence float64    `json:"confidence"`
	ErrorBound uint64     `json:"error_bound"`
	Top        []freqJSON `json:"top"`
	// TopCut is set when top lists fewer items than asked because the
	// sketch keeps only so many candidates.
	TopCut *topCutJSON `json:"top_cut,omitempty"`
	Items  []freqJSON  `json:"items,omitempty"`
}

type freqJSON struct {
	Item     string `json:"item"`
	Estimate uint64 `json:"estimate"`
	Lower    uint64 `json:"lower"`
	Upper    uint64 `json:"upper"`
}

// quantileAnswer is what the quantile kinds answer alike.
type quantileAnswer struct {
	Count     uint64         `json:"count"`
	Min       *float64       `json:"min"`
	Max       *float64       `json:"max"`
	Quantiles []quantileJSON `json:"quantiles"`
}

type tdigestAnswer struct {
	quantileAnswer `json:"-"` // rendered through answers.quantileAnswer
	Mean           meanJSON   `json:"mean"`
	Compression    float64    `json:"compression"`
	// RankErrorConfidence is the share of answers whose rank_error holds
	// (sketch.RankConfidence, measured).
	RankErrorConfidence float64       `json:"rank_error_confidence"`
	CDF                 []cdfJSON     `json:"cdf,omitempty"`
	Ranks               []rankJSON    `json:"ranks,omitempty"`
	TrimmedMeans        []trimmedJSON `json:"trimmed_means,omitempty"`
}

type quantileJSON struct {
	Q     float64  `json:"q"`
	Value *float64 `json:"value"`
	Lower *float64 `json:"lower"`
	Upper *float64 `json:"upper"`
	// RankError is the t-digest's; null for a ddsketch, whose error is
	// relative (its answer's relative_accuracy).
	RankError *float64 `json:"rank_error"`
}

type cdfJSON struct {
	Value     float64  `json:"value"`
	P         *float64 `json:"p"`
	Lower     *float64 `json:"lower"`
	Upper     *float64 `json:"upper"`
	RankError *float64 `json:"rank_error"`
}

type reservoirAnswer struct {
	Population uint64 `json:"population"`
	Size       int    `json:"size"`
	// Truncated: the byte budget (sketch.MaxReservoirBytes), not Size,
	// limited the sample.
	Truncated bool `json:"truncated"`
	// Stored is how many items the merged sample holds, Returned how many
	// the answer lists (n), and InclusionProbability the chance of each
	// event of the population to be listed (see stratum).
	Stored               int               `json:"stored"`
	Returned             int               `json:"returned"`
	InclusionProbability *float64          `json:"inclusion_probability"`
	Seed                 *uint64           `json:"seed,omitempty"`
	Sample               []json.RawMessage `json:"sample"`
}

func cmsAnswerOf(sk *sketch.CountMin, p queryParams) *cmsAnswer {
	total := sk.Total()
	eps := sk.Epsilon()
	a := &cmsAnswer{
		Total:      total,
		Epsilon:    eps,
		Confidence: 1 - sk.Delta(),
		ErrorBound: uint64(math.Ceil(eps * float64(total))),
		Top:        []freqJSON{},
	}
	if p.top > 0 {
		for _, f := range sk.TopK(p.top) {
			a.Top = append(a.Top, freq(f))
		}
		a.TopCut = topCut(sk, p.top, len(a.Top))
	}
	if len(p.items) > 0 {
		a.Items = make([]freqJSON, 0, len(p.items))
		for _, it := range p.items {
			a.Items = append(a.Items, freq(sk.Estimate([]byte(it))))
		}
	}
	return a
}

func freq(f sketch.FrequencyEstimate) freqJSON {
	return freqJSON{Item: string(f.Item), Estimate: f.Estimate, Lower: f.Lower, Upper: f.Upper}
}

func tdigestAnswerOf(sk *sketch.TDigest, p queryParams) *tdigestAnswer {
	a := &tdigestAnswer{
		quantileAnswer: quantileAnswer{Count: sk.Count(), Quantiles: make([]quantileJSON, 0, len(p.q))},
		Compression:    sk.Params().Compression,
	}
	if a.Count > 0 {
		a.Min, a.Max = num(sk.Min()), num(sk.Max())
	}
	for _, q := range p.q {
		qj := quantileJSON{Q: q}
		if a.Count > 0 {
			e := sk.Quantile(q)
			qj.Value, qj.Lower, qj.Upper, qj.RankError = num(e.Value), num(e.Lower), num(e.Upper), num(e.RankError)
		}
		a.Quantiles = append(a.Quantiles, qj)
	}
	if len(p.cdf) > 0 {
		a.CDF = make([]cdfJSON, 0, len(p.cdf))
		for _, x := range p.cdf {
			c := cdfJSON{Value: x}
			if a.Count > 0 {
				r := sk.Rank(x)
				c.P, c.Lower, c.Upper, c.RankError = num(r.Fraction), num(r.Lower), num(r.Upper), num(r.RankError)
			}
			a.CDF = append(a.CDF, c)
		}
	}
	addTDigestAnswers(a, sk, p)
	return a
}

func reservoirAnswerOf(sk *sketch.Reservoir, p queryParams) *reservoirAnswer {
	items := subsample(sk, p)
	a := &reservoirAnswer{Population: sk.Population(), Size: sk.Params().Size, Truncated: sk.Truncated(), Sample: make([]json.RawMessage, 0, len(items))}
	a.stratum(sk, p, len(items))
	for _, it := range items {
		if json.Valid(it) {
			a.Sample = append(a.Sample, json.RawMessage(it))
		} else {
			// Not JSON (cannot come from ingest, which stores raw JSON):
			// show it as a string rather than fail the answer.
			b, _ := json.Marshal(string(it))
			a.Sample = append(a.Sample, json.RawMessage(b))
		}
	}
	return a
}

// thetaAnswer is a theta sketch's distinct count: the estimate with its
// interval (as hll's), and what it was estimated from.
type thetaAnswer struct {
	hllAnswer `json:"-"` // rendered through answers.hllAnswer
	Theta     thetaJSON  `json:"theta"`
}

type thetaJSON struct {
	NominalEntries int     `json:"nominal_entries"`
	Retained       int     `json:"retained"`
	Theta          float64 `json:"theta"`
	Exact          bool    `json:"exact"`
}

func thetaAnswerOf(sk *sketch.Theta, _ queryParams) *thetaAnswer {
	return thetaAnswerFrom(sk.Estimate(), sk.Params().NominalEntries)
}

func thetaAnswerFrom(e sketch.ThetaEstimate, k int) *thetaAnswer {
	return &thetaAnswer{
		hllAnswer: hllAnswer{Distinct: distinctJSON{
			Estimate: finite(e.Estimate), Lower: finite(e.Lower), Upper: finite(e.Upper),
			Confidence: e.Confidence, RSE: finite(e.RSE),
		}},
		Theta: thetaJSON{NominalEntries: k, Retained: e.Retained, Theta: e.Theta, Exact: e.Exact},
	}
}

// ddsketchAnswer is a DDSketch's quantiles: each value is within a factor
// 1 ± relative_accuracy of the exact quantile, which lies in [lower, upper].
type ddsketchAnswer struct {
	quantileAnswer   `json:"-"` // rendered through answers.quantileAnswer
	RelativeAccuracy float64    `json:"relative_accuracy"`
}

func ddsketchAnswerOf(sk *sketch.DDSketch, p queryParams) *ddsketchAnswer {
	a := &ddsketchAnswer{
		quantileAnswer:   quantileAnswer{Count: sk.Count(), Quantiles: make([]quantileJSON, 0, len(p.q))},
		RelativeAccuracy: sk.Params().RelativeAccuracy,
	}
	if a.Count > 0 {
		a.Min, a.Max = num(sk.Min()), num(sk.Max())
	}
	for _, q := range p.q {
		qj := quantileJSON{Q: q}
		if a.Count > 0 {
			e := sk.Quantile(q)
			qj.Value, qj.Lower, qj.Upper = num(e.Value), num(e.Lower), num(e.Upper)
		}
		a.Quantiles = append(a.Quantiles, qj)
	}
	return a
}
