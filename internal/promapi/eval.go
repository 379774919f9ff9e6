package promapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/sketch"
)

// defaultLookback is the window of an instant query without
// lookback_delta: [time - 5m, time), Prometheus's default lookback.
const defaultLookback = 5 * time.Minute

// evalSpan is where a query is evaluated: a range query at start, start +
// step, ... up to end, each sample the window [t - step, t); an instant
// query at end alone, its sample the window [end - lookback, end).
type evalSpan struct {
	start, end int64 // unix ns
	step       int64 // ns; 0 for an instant query
	lookback   int64 // ns; instant queries
}

// series is one answer series.
type series struct {
	labels labels.Labels
	points []point
}

type point struct {
	t int64 // unix ms
	v float64
}

// MarshalJSON writes [seconds, "value"] as Prometheus does.
func (p point) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 32)
	b = append(b, '[')
	b = strconv.AppendFloat(b, float64(p.t)/1000, 'f', -1, 64)
	b = append(b, ',', '"')
	b = append(b, formatValue(p.v)...)
	return append(b, '"', ']'), nil
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

type matrixJSON struct {
	Metric labels.Labels `json:"metric"`
	Values []point       `json:"values"`
}

type vectorJSON struct {
	Metric labels.Labels `json:"metric"`
	Value  point         `json:"value"`
}

type resultJSON struct {
	ResultType string `json:"resultType"`
	Result     any    `json:"result"`
}

// instantQuery answers /api/v1/query: query, time (default now),
// lookback_delta (default 5m).
func (h *Handler) instantQuery(r *http.Request) (any, []string, error) {
	prog, err := h.queryParam(r)
	if err != nil {
		return nil, nil, err
	}
	at, err := timeParam(r, "time", h.now())
	if err != nil {
		return nil, nil, err
	}
	lb, err := durationParam(r, "lookback_delta", defaultLookback)
	if err != nil {
		return nil, nil, err
	}
	if lb > h.opts.MaxRange {
		return nil, nil, badData("invalid parameter \"lookback_delta\": wider than the maximum range %s", sketchd.Duration(h.opts.MaxRange))
	}
	if prog.scalar != nil {
		return resultJSON{"scalar", point{unixMs(at), *prog.scalar}}, nil, nil
	}
	sp := evalSpan{start: at, end: at, lookback: int64(lb)}
	p, err := h.prepare(r.Context(), prog.sel, sp)
	if err != nil {
		return nil, nil, err
	}
	return h.lazyAnswer(r, p, sp, func(ss []series) any {
		out := make([]vectorJSON, 0, len(ss))
		for _, s := range ss {
			for _, p := range s.points {
				out = append(out, vectorJSON{s.labels, p})
			}
		}
		return resultJSON{"vector", out}
	}), p.warnings, nil
}

// rangeQuery answers /api/v1/query_range: query, start, end, step.
func (h *Handler) rangeQuery(r *http.Request) (any, []string, error) {
	prog, err := h.queryParam(r)
	if err != nil {
		return nil, nil, err
	}
	sp, err := h.rangeSpan(r)
	if err != nil {
		return nil, nil, err
	}
	if prog.scalar != nil {
		s := series{labels: labels.EmptyLabels()}
		for t := sp.start; t <= sp.end; t += sp.step {
			s.points = append(s.points, point{unixMs(t), *prog.scalar})
		}
		return resultJSON{"matrix", []matrixJSON{{s.labels, s.points}}}, nil, nil
	}
	p, err := h.prepare(r.Context(), prog.sel, sp)
	if err != nil {
		return nil, nil, err
	}
	return h.lazyAnswer(r, p, sp, func(ss []series) any {
		out := make([]matrixJSON, 0, len(ss))
		for _, s := range ss {
			out = append(out, matrixJSON{s.labels, s.points})
		}
		return resultJSON{"matrix", out}
	}), p.warnings, nil
}

// rangeSpan reads start, end and step of a range query; at most
// MaxPoints points per series, as Prometheus.
func (h *Handler) rangeSpan(r *http.Request) (evalSpan, error) {
	var sp evalSpan
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"start", &sp.start}, {"end", &sp.end}} {
		if _, ok := r.Form[p.name]; !ok {
			return sp, badData("invalid parameter %q: missing", p.name)
		}
		var err error
		if *p.dst, err = timeParam(r, p.name, time.Time{}); err != nil {
			return sp, err
		}
	}
	if sp.end < sp.start {
		return sp, badData("invalid parameter \"end\": end timestamp must not be before start time")
	}
	if _, ok := r.Form["step"]; !ok {
		return sp, badData("invalid parameter \"step\": missing")
	}
	step, err := durationParam(r, "step", 0)
	if err != nil {
		return sp, err
	}
	if step > h.opts.MaxRange {
		return sp, badData("invalid parameter \"step\": wider than the maximum range %s", sketchd.Duration(h.opts.MaxRange))
	}
	sp.step = int64(step)
	if (sp.end-sp.start)/sp.step >= int64(h.opts.MaxPoints) {
		return sp, badData("exceeded maximum resolution of %d points per timeseries. Try decreasing the query resolution (?step=XX)", h.opts.MaxPoints)
	}
	return sp, nil
}

// queryParam compiles the query parameter.
func (h *Handler) queryParam(r *http.Request) (program, error) {
	q, ok, err := param(r, "query")
	if err != nil {
		return program{}, err
	}
	if !ok || strings.TrimSpace(q) == "" {
		return program{}, badData("invalid parameter \"query\": missing")
	}
	return h.compile(q)
}

// planned is a selection ready to run over a span: its targets, the
// query.Query of each, and the warnings of planning them. A target with no
// window from its aggregate's since on is left out (see fromSince).
type planned struct {
	targets  []target
	queries  []query.Query
	warnings []string
}

// prepare plans the selection over sp: one query.Query per target. It
// reads no panes (it runs before the request takes a query slot).
func (h *Handler) prepare(ctx context.Context, sel *selection, sp evalSpan) (*planned, error) {
	streams, err := h.streams.List(ctx)
	if err != nil {
		return nil, err
	}
	targets, err := sel.targets(streams)
	if err != nil {
		return nil, err
	}
	p := &planned{}
	for i := range targets {
		qu, warning, err := h.plan(&targets[i], sp)
		if err != nil {
			return nil, err
		}
		if warning != "" && !slices.Contains(p.warnings, warning) {
			p.warnings = append(p.warnings, warning)
		}
		if qu, ok := fromSince(&targets[i].status.Spec, qu); ok {
			p.targets = append(p.targets, targets[i])
			p.queries = append(p.queries, qu)
		}
	}
	return p, nil
}

// fromSince is qu without the windows that start before its aggregate's
// since (an aggregate an alter added holds nothing before it), as a new
// Prometheus series has no samples before it started: a range query's
// first window moves on by whole steps, so the windows left are those of
// qu, at the same times; an instant query's one window starts before since
// or not. False when no window is left. The query engine refuses a window
// before since (query.ErrBeforeSince), as /v1 does.
func fromSince(spec *sketchd.Stream, qu query.Query) (query.Query, bool) {
	s := spec.Aggregates[qu.Aggregate].Since
	if s == nil {
		return qu, true
	}
	since := s.UnixNano()
	from := sketchd.PaneStart(qu.From, int64(spec.Granularity)) // the query engine's first window start
	if from >= since {
		return qu, true
	}
	if qu.Step == 0 {
		return qu, false
	}
	qu.From = from + (since-from+qu.Step-1)/qu.Step*qu.Step
	return qu, qu.From < qu.To
}

// run runs the planned queries through the query engine, whose results it
// only reads (Config.Querier may share cached sketches), and returns the
// series sorted by labels, and the warnings of what the results say
// (expiredWarning).
func (h *Handler) run(ctx context.Context, p *planned, sp evalSpan) ([]series, []string, error) {
	var (
		out      []series
		warnings []string
		samples  int
	)
	for i := range p.targets {
		t := &p.targets[i]
		res, err := h.querier.Query(ctx, query.TargetOf(t.status), p.queries[i])
		if err != nil {
			return nil, nil, fmt.Errorf("stream %q aggregate %q: %w", t.status.Spec.Name, t.aggregate, err)
		}
		ss := t.series(res, sp)
		for _, s := range ss {
			samples += len(s.points)
		}
		if samples > h.opts.MaxSamples {
			return nil, nil, &apiError{errorExec, fmt.Sprintf("query too large: more than %d samples; narrow the range, raise the step or select fewer series", h.opts.MaxSamples)}
		}
		out = append(out, ss...)
		if w, ok := expiredWarning(t.status.Spec.Name, res); ok && !slices.Contains(warnings, w) {
			warnings = append(warnings, w)
		}
	}
	slices.SortFunc(out, func(a, b series) int { return labels.Compare(a.labels, b.labels) })
	return out, warnings, nil
}

// expiredWarning is the warning of a result with windows in a part of the
// range the stream's retention no longer keeps (query.Window.Incomplete):
// Prometheus's format has no place to say so in the samples.
func expiredWarning(stream string, res *query.Result) (string, bool) {
	for _, g := range res.Groups {
		for _, w := range g.Windows {
			if !w.Incomplete {
				continue
			}
			kept := ""
			if res.RetainedFrom != sketchd.NoTime {
				kept = " (its panes are kept from " + time.Unix(0, res.RetainedFrom).UTC().Format(time.RFC3339) + " on)"
			}
			return fmt.Sprintf("stream %q: part of the range is past its retention%s: windows wholly in that part have no samples, and a window partly in it counts only the rest", stream, kept), true
		}
	}
	return "", false
}

// plan is the query.Query of t over sp. The step (and an instant query's
// lookback) is raised to a multiple of the stream's granularity, with a
// warning.
func (h *Handler) plan(t *target, sp evalSpan) (query.Query, string, error) {
	spec := &t.status.Spec
	g := int64(spec.Granularity)
	qu := query.Query{Aggregate: t.aggregate, Where: t.where, GroupBy: t.groupBy, To: sp.end}
	var warning string
	if sp.step == 0 {
		lb := ceilTo(sp.lookback, g)
		qu.From = sp.end - lb
	} else {
		qu.Step = ceilTo(sp.step, g)
		qu.From = sp.start - qu.Step
		if qu.Step != sp.step {
			warning = fmt.Sprintf("stream %q: step %s raised to %s, a multiple of its granularity %s",
				spec.Name, time.Duration(sp.step), time.Duration(qu.Step), spec.Granularity)
		}
	}
	if qu.To-qu.From > int64(h.opts.MaxRange) {
		return qu, "", &apiError{errorExec, fmt.Sprintf("query too large: the range is wider than %s", sketchd.Duration(h.opts.MaxRange))}
	}
	return qu, warning, nil
}

// series turns a result into the target's series: one per group (and per
// quantile or item), a sample per window, stamped at the window's end (an
// instant query's at its time). A result that merged no key has no
// series: Prometheus answers nothing, not a 0, for an aggregation over an
// empty selection (the query engine answers one empty group when it does
// not group). A window that lies wholly in a part of the range the
// stream's retention no longer keeps (query.Window.Expired) has no sample,
// as a Prometheus series has none where it has no data.
func (t *target) series(res *query.Result, sp evalSpan) []series {
	if res.Keys == 0 {
		return nil
	}
	var out []series
	for gi := range res.Groups {
		g := &res.Groups[gi]
		b := labels.NewBuilder(t.fixed)
		for d, v := range g.Key {
			b.Set(d, v)
		}
		base := b.Labels()
		index := map[string]int{} // extra label value -> series in out
		add := func(extra string, ts int64, v float64) {
			i, ok := index[extra]
			if !ok {
				ls := base
				if extra != "" {
					ls = labels.NewBuilder(base).Set(t.metric.extraLabel(), extra).Labels()
				}
				i = len(out)
				index[extra] = i
				out = append(out, series{labels: ls, points: make([]point, 0, len(g.Windows))})
			}
			out[i].points = append(out[i].points, point{ts, v})
		}
		for wi := range g.Windows {
			w := &g.Windows[wi]
			ts := unixMs(w.End)
			if sp.step == 0 {
				ts = unixMs(sp.end)
			} else if w.End < sp.start {
				continue
			}
			if w.Expired {
				continue
			}
			t.samples(w, ts, add)
		}
	}
	return out
}

// samples adds the window's samples of the target's metric.
func (t *target) samples(w *query.Window, ts int64, add func(extra string, ts int64, v float64)) {
	m := &t.metric
	switch m.kind {
	case "":
		add("", ts, float64(w.Events))
	case sketchd.KindHLL:
		if v, ok := m.distinct(w.Sketch); ok {
			add("", ts, v)
		}
	case sketchd.KindTDigest:
		for _, q := range t.extra {
			f, _ := strconv.ParseFloat(q, 64) // checked by target
			if v, ok := m.quantile(w.Sketch, f); ok {
				add(q, ts, v)
			}
		}
	case sketchd.KindCMS:
		c, ok := w.Sketch.(*sketch.CountMin)
		if !ok {
			return
		}
		if t.extra != nil {
			for _, it := range t.extra {
				add(it, ts, m.frequency(c.Estimate([]byte(it))))
			}
			return
		}
		agg := t.status.Spec.Aggregates[t.aggregate]
		agg.Normalize()
		for _, f := range c.TopK(agg.TopK) {
			add(string(f.Item), ts, m.frequency(f))
		}
	}
}
