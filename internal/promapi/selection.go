package promapi

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sketchd/sketchd"
)

// defaultQuantiles are the quantiles of sketchd_quantile without a
// quantile matcher (those of /v1 without q).
var defaultQuantiles = []string{"0.5", "0.9", "0.99"}

// target is one (metric, stream, aggregate) a selection reads, with the
// query parameters its matchers and grouping give.
type target struct {
	metric    metric
	status    *sketchd.StreamStatus
	aggregate string              // the aggregate read (sketchd_count: the stream's first)
	where     map[string][]string // dimension matchers
	groupBy   []string            // the dimensions kept
	// extra is the values of the quantile or item label the matchers ask
	// for; nil: the default quantiles, or the window's top items.
	extra []string
	fixed labels.Labels // the labels every series of the target carries
}

// targets resolves the selection against the streams. A matcher that
// cannot become a where filter (!=, !~, or a regular expression that is
// not an alternation of literals) on a dimension is refused.
func (sel *selection) targets(streams []sketchd.StreamStatus) ([]target, error) {
	var out []target
	for mi := range sel.metrics {
		m := &sel.metrics[mi]
		for si := range streams {
			st := &streams[si]
			for _, agg := range aggregatesOf(&st.Spec, m) {
				t, ok, err := sel.target(m, st, agg)
				if err != nil {
					return nil, err
				}
				if ok {
					out = append(out, t)
				}
			}
		}
	}
	return out, nil
}

// aggregatesOf lists the aggregates of spec that metric m reads: those of
// its kind, or for sketchd_count one of them (every aggregate's windows
// carry the exact event count): the first that has existed longest, so that
// an aggregate an alter added (which has no windows before its since) is
// read only when every aggregate was.
func aggregatesOf(spec *sketchd.Stream, m *metric) []string {
	names := spec.AggregateNames()
	if m.kind == "" {
		if len(names) == 0 {
			return nil
		}
		first := names[0]
		for _, n := range names[1:] {
			if earlier(spec.Aggregates[n].Since, spec.Aggregates[first].Since) {
				first = n
			}
		}
		return []string{first}
	}
	var out []string
	for _, n := range names {
		if m.reads(spec.Aggregates[n].Sketch) {
			out = append(out, n)
		}
	}
	return out
}

// earlier reports since a before since b; nil (no since) is the earliest.
func earlier(a, b *time.Time) bool {
	switch {
	case a == nil:
		return b != nil
	case b == nil:
		return false
	}
	return a.Before(*b)
}

// target applies the matchers to one (metric, stream, aggregate); false
// when they exclude it.
func (sel *selection) target(m *metric, st *sketchd.StreamStatus, agg string) (target, bool, error) {
	spec := &st.Spec
	t := target{metric: *m, status: st, aggregate: agg}
	b := labels.NewBuilder(labels.EmptyLabels())
	if !sel.sum {
		b.Set(labelName, m.name)
	}
	b.Set(labelStream, spec.Name)
	if m.hasAggregateLabel() {
		b.Set(labelAggregate, agg)
	}
	extraSet := false
	for _, mt := range sel.matchers {
		switch {
		case matchesAnything(mt):
			// =~".*", a dashboard variable's "All": no filter.
		case mt.Name == labelStream || (mt.Name == labelAggregate && m.hasAggregateLabel()):
			if !mt.Matches(b.Get(mt.Name)) {
				return t, false, nil
			}
		case mt.Name == m.extraLabel() && m.extraLabel() != "":
			vals, err := literals(mt)
			if err != nil {
				return t, false, err
			}
			if extraSet {
				vals = intersect(t.extra, vals)
			}
			t.extra, extraSet = vals, true
		case slices.Contains(spec.GroupBy, mt.Name):
			vals, err := literals(mt)
			if err != nil {
				return t, false, err
			}
			if t.where == nil {
				t.where = map[string][]string{}
			}
			if prev, ok := t.where[mt.Name]; ok {
				vals = intersect(prev, vals)
			}
			t.where[mt.Name] = vals
		default:
			// A label these series do not have: its value is "".
			if !mt.Matches("") {
				return t, false, nil
			}
		}
	}
	if extraSet && len(t.extra) == 0 {
		return t, false, nil
	}
	for _, vals := range t.where {
		if len(vals) == 0 {
			return t, false, nil
		}
	}
	if m.kind == sketchd.KindTDigest {
		if !extraSet {
			t.extra = defaultQuantiles
		}
		for _, q := range t.extra {
			if f, err := strconv.ParseFloat(q, 64); err != nil || !(f >= 0 && f <= 1) {
				return t, false, badData("quantile=%q: want a number in [0, 1]", q)
			}
		}
	}
	t.groupBy = sel.groupBy(spec.GroupBy)
	t.fixed = b.Labels()
	return t, true, nil
}

// groupBy is the dimensions a series keeps: all of them for a bare
// selector, those of by (or all but those of without) under sum.
func (sel *selection) groupBy(dims []string) []string {
	if !sel.sum {
		return dims
	}
	var out []string
	for _, d := range dims {
		if slices.Contains(sel.by, d) != sel.without {
			out = append(out, d)
		}
	}
	return out
}

// matchesAnything reports a matcher every value passes (=~".*").
func matchesAnything(m *labels.Matcher) bool {
	return m.Type == labels.MatchRegexp && m.Value == ".*"
}

// literals returns the values an equality matcher or a regular expression
// that is an alternation of literals ("DE|FR") accepts.
func literals(m *labels.Matcher) ([]string, error) {
	switch m.Type {
	case labels.MatchEqual:
		return []string{m.Value}, nil
	case labels.MatchRegexp:
		set := m.SetMatches()
		if set == nil {
			set = literalDots(m.Value)
		}
		if set == nil {
			return nil, unsupported("the matcher %s: a regular expression on label %q must be an alternation of literal values such as \"DE|FR\"", m, m.Name)
		}
		var out []string
		for _, v := range set {
			if m.Matches(v) && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out, nil
	}
	return nil, unsupported("the matcher %s: on label %q only = and =~ with literal alternatives select keys", m, m.Name)
}

func intersect(a, b []string) []string {
	var out []string
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

// literalDots returns the values of regular expression re read with its
// unescaped dots as literal dots ("0.5|0.99" as `0\.5|0\.99`), if that
// is an alternation of literals; nil otherwise. Every value returned is
// matched by re itself, since a dot matches a dot.
func literalDots(re string) []string {
	var b strings.Builder
	for i := 0; i < len(re); i++ {
		switch c := re[i]; {
		case c == '\\' && i+1 < len(re):
			b.WriteByte(c)
			i++
			b.WriteByte(re[i])
		case c == '.':
			b.WriteString(`\.`)
		default:
			b.WriteByte(c)
		}
	}
	if b.String() == re {
		return nil
	}
	m, err := labels.NewMatcher(labels.MatchRegexp, "", b.String())
	if err != nil {
		return nil
	}
	return m.SetMatches()
}
