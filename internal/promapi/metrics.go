package promapi

import (
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// Label names sketchd's series carry besides the stream's dimensions.
const (
	labelName      = "__name__"
	labelStream    = "stream"
	labelAggregate = "aggregate"
	labelQuantile  = "quantile"
	labelItem      = "item"
)

// bound is which number of an estimate a metric reports.
type bound int

const (
	boundEstimate bound = iota
	boundLower
	boundUpper
)

// metric is one metric name: what it reads from a window.
type metric struct {
	name  string
	kind  sketchd.AggregateKind // "" for sketchd_count: any aggregate's windows
	bound bound
	help  string
}

// metrics is the one table of the metric names served.
var metrics = []metric{
	{"sketchd_count", "", boundEstimate, "Exact number of events in the window (per stream; any aggregate)."},
	{"sketchd_distinct", sketchd.KindHLL, boundEstimate, "Distinct count estimate of an hll or theta aggregate in the window."},
	{"sketchd_distinct_lower", sketchd.KindHLL, boundLower, "Lower bound of the distinct count (95% confidence)."},
	{"sketchd_distinct_upper", sketchd.KindHLL, boundUpper, "Upper bound of the distinct count (95% confidence)."},
	{"sketchd_quantile", sketchd.KindTDigest, boundEstimate, "Quantile (label quantile) of a tdigest or ddsketch aggregate in the window."},
	{"sketchd_quantile_lower", sketchd.KindTDigest, boundLower, "Lower bound of the quantile (tdigest: the value at quantile minus the rank error; ddsketch: from the relative accuracy)."},
	{"sketchd_quantile_upper", sketchd.KindTDigest, boundUpper, "Upper bound of the quantile (tdigest: the value at quantile plus the rank error; ddsketch: from the relative accuracy)."},
	{"sketchd_top_count", sketchd.KindCMS, boundEstimate, "Count-min frequency estimate of an item (label item); without an item matcher, the window's top items."},
	{"sketchd_top_count_lower", sketchd.KindCMS, boundLower, "Lower bound of the item's frequency."},
	{"sketchd_top_count_upper", sketchd.KindCMS, boundUpper, "Upper bound of the item's frequency (estimate + epsilon N)."},
}

// siblings are the kinds a metric of another kind also reads: theta
// aggregates answer the distinct-count metrics, ddsketch aggregates the
// quantile metrics, with their own bounds.
var siblings = map[sketchd.AggregateKind]sketchd.AggregateKind{
	sketchd.KindTheta:    sketchd.KindHLL,
	sketchd.KindDDSketch: sketchd.KindTDigest,
}

// reads reports whether the metric reads aggregates of kind k.
func (m *metric) reads(k sketchd.AggregateKind) bool {
	return k == m.kind || siblings[k] == m.kind && m.kind != ""
}

// hasAggregateLabel reports whether the metric's series name an aggregate.
func (m *metric) hasAggregateLabel() bool { return m.kind != "" }

// extraLabel is the label that splits one aggregate's series: quantile or
// item ("" for none).
func (m *metric) extraLabel() string {
	switch m.kind {
	case sketchd.KindTDigest:
		return labelQuantile
	case sketchd.KindCMS:
		return labelItem
	}
	return ""
}

func (b bound) of(est, lower, upper float64) float64 {
	switch b {
	case boundLower:
		return lower
	case boundUpper:
		return upper
	}
	return est
}

// distinct is the value of an hll or theta window.
func (m *metric) distinct(sk sketch.Sketch) (float64, bool) {
	switch s := sk.(type) {
	case *sketch.HLL:
		e := s.Estimate()
		return m.bound.of(e.Estimate, e.Lower, e.Upper), true
	case *sketch.Theta:
		e := s.Estimate()
		return m.bound.of(e.Estimate, e.Lower, e.Upper), true
	}
	return 0, false
}

// quantile is the value of a tdigest window at q; false when the window
// has no values (Prometheus has no sample there).
func (m *metric) quantile(sk sketch.Sketch, q float64) (float64, bool) {
	switch s := sk.(type) {
	case *sketch.TDigest:
		if s.Count() > 0 {
			e := s.Quantile(q)
			return m.bound.of(e.Value, e.Lower, e.Upper), true
		}
	case *sketch.DDSketch:
		if s.Count() > 0 {
			e := s.Quantile(q)
			return m.bound.of(e.Value, e.Lower, e.Upper), true
		}
	}
	return 0, false
}

// frequency is the value of a count-min estimate.
func (m *metric) frequency(f sketch.FrequencyEstimate) float64 {
	return m.bound.of(float64(f.Estimate), float64(f.Lower), float64(f.Upper))
}
