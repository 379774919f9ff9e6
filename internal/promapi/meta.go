package promapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/sketch"
)

// metaRange reads start and end of a series or label request. end
// defaults to now and is at most now; start defaults to end - MetaRange
// and is at least end - MaxRange. Prometheus's default is all data, and
// its clients send the smallest and largest times they can to mean that
// (promtool does), so times out of range are clamped, not refused.
func (h *Handler) metaRange(r *http.Request) (int64, int64, error) {
	now := h.now()
	end, err := clampedTimeParam(r, "end", now)
	if err != nil {
		return 0, 0, err
	}
	end = min(end, now.UnixNano())
	start, err := clampedTimeParam(r, "start", time.Unix(0, end).Add(-h.opts.MetaRange))
	if err != nil {
		return 0, 0, err
	}
	start = max(start, end-int64(h.opts.MaxRange))
	if end <= start {
		return 0, 0, badData("invalid parameter \"end\": end timestamp must be after start time")
	}
	return start, end, nil
}

// clampedTimeParam is timeParam with unix seconds out of range moved to
// the range's ends.
func clampedTimeParam(r *http.Request, name string, def time.Time) (int64, error) {
	if s, ok, _ := param(r, name); ok {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			switch {
			case f < float64(minTime.Unix()):
				return minTime.UnixNano(), nil
			case f >= float64(maxTime.Unix()):
				return maxTime.UnixNano() - 1, nil
			}
		}
	}
	return timeParam(r, name, def)
}

// metaTargets resolves the match[] selectors (all of sketchd's series
// when there are none and required is false).
func (h *Handler) metaTargets(ctx context.Context, r *http.Request, required bool) ([]target, error) {
	matches := r.Form["match[]"]
	if len(matches) == 0 && required {
		return nil, badData("no match[] parameter provided")
	}
	streams, err := h.streams.List(ctx)
	if err != nil {
		return nil, err
	}
	sels := []*selection{{metrics: metrics}}
	if len(matches) > 0 {
		sels = sels[:0]
		for _, s := range matches {
			e, err := h.parser.ParseExpr(s)
			if err != nil {
				return nil, badData("invalid parameter \"match[]\": %v", err)
			}
			vs, ok := unwrap(e).(*parser.VectorSelector)
			if !ok {
				return nil, badData("invalid parameter \"match[]\": %q is not a series selector", s)
			}
			sel, err := compileSelector(vs)
			if err != nil {
				return nil, err
			}
			sels = append(sels, sel)
		}
	}
	var out []target
	for _, sel := range sels {
		ts, err := sel.targets(streams)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// metaReq is what a series, label or metadata request asks for.
type metaReq struct {
	start, end int64
	limit      int
	targets    []target
}

// metaRequest reads the range, limit and match[] of a series, label or
// metadata request; match[] is required for series.
func (h *Handler) metaRequest(r *http.Request, matchRequired bool) (metaReq, error) {
	var m metaReq
	var err error
	if m.start, m.end, err = h.metaRange(r); err != nil {
		return m, err
	}
	if m.limit, err = h.limitParam(r); err != nil {
		return m, err
	}
	m.targets, err = h.metaTargets(r.Context(), r, matchRequired)
	return m, err
}

// limitParam reads limit: at most MaxSeries, which is also the default.
func (h *Handler) limitParam(r *http.Request) (int, error) {
	s, ok, err := param(r, "limit")
	if err != nil || !ok {
		return h.opts.MaxSeries, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badData("invalid parameter \"limit\": want a non-negative integer, got %q", s)
	}
	if n == 0 || n > h.opts.MaxSeries {
		n = h.opts.MaxSeries
	}
	return n, nil
}

// keyLister lists the keys of a stream once per where filter.
type keyLister struct {
	h         *Handler
	from, to  int64
	limit     int
	seen      map[string][]map[string]string
	truncated bool
}

func (k *keyLister) keys(ctx context.Context, t *target) ([]map[string]string, error) {
	id := t.status.Spec.Name + "\x00" + fmt.Sprint(t.where)
	if ks, ok := k.seen[id]; ok {
		return ks, nil
	}
	from := sketchd.PaneStart(k.from, int64(t.status.Spec.Granularity))
	ks, truncated, err := k.h.querier.Keys(ctx, query.TargetOf(t.status), from, k.to, t.where, k.limit)
	if err != nil {
		return nil, fmt.Errorf("stream %q keys: %w", t.status.Spec.Name, err)
	}
	k.truncated = k.truncated || truncated
	k.seen[id] = ks
	return ks, nil
}

func (h *Handler) newKeyLister(from, to int64, limit int) *keyLister {
	return &keyLister{h: h, from: from, to: to, limit: limit, seen: map[string][]map[string]string{}}
}

// truncatedWarning is the warning of a listing cut at its limit.
const truncatedWarning = "results truncated due to limit"

// series answers /api/v1/series: the label sets of the series match[]
// selects that have data in [start, end).
func (h *Handler) series(r *http.Request) (any, []string, error) {
	m, err := h.metaRequest(r, true)
	if err != nil {
		return nil, nil, err
	}
	targets, limit := m.targets, m.limit
	kl := h.newKeyLister(m.start, m.end, limit)
	out := []labels.Labels{}
	seen := map[string]bool{}
	truncated := false
	for i := range targets {
		t := &targets[i]
		keys, err := kl.keys(r.Context(), t)
		if err != nil {
			return nil, nil, err
		}
		extras := t.extra
		if extras == nil {
			extras = []string{""} // the window's top items: no item label until queried
		}
		for _, key := range keys {
			for _, x := range extras {
				b := labels.NewBuilder(t.fixed)
				for d, v := range key {
					b.Set(d, v)
				}
				if x != "" {
					b.Set(t.metric.extraLabel(), x)
				}
				ls := b.Labels()
				if s := ls.String(); !seen[s] {
					if len(out) >= limit {
						truncated = true
						break
					}
					seen[s] = true
					out = append(out, ls)
				}
			}
		}
	}
	slices.SortFunc(out, labels.Compare)
	var warnings []string
	if truncated || kl.truncated {
		warnings = []string{truncatedWarning}
	}
	return out, warnings, nil
}

// labelNames answers /api/v1/labels: the label names of the series
// match[] selects (all of sketchd's when absent), from the stream specs.
func (h *Handler) labelNames(r *http.Request) (any, []string, error) {
	m, err := h.metaRequest(r, false)
	if err != nil {
		return nil, nil, err
	}
	targets := m.targets
	names := map[string]bool{}
	for i := range targets {
		t := &targets[i]
		t.fixed.Range(func(l labels.Label) { names[l.Name] = true })
		names[labelName] = true
		if x := t.metric.extraLabel(); x != "" {
			names[x] = true
		}
		for _, d := range t.status.Spec.GroupBy {
			names[d] = true
		}
	}
	return nonNil(slices.Sorted(maps.Keys(names))), nil, nil
}

// nonNil is vals, or [] (JSON [], as Prometheus answers an empty list,
// not null) when it is nil.
func nonNil(vals []string) []string {
	if vals == nil {
		return []string{}
	}
	return vals
}

// labelValues answers /api/v1/label/{name}/values for the series match[]
// selects (all of sketchd's when absent): metric, stream and aggregate
// names from the specs, the default or matched quantiles, the top items
// of [start, end) for item, and for a dimension the values of the keys
// with data in [start, end).
func (h *Handler) labelValues(r *http.Request) (any, []string, error) {
	name := r.PathValue("name")
	m, err := h.metaRequest(r, false)
	if err != nil {
		return nil, nil, err
	}
	targets, limit, start, end := m.targets, m.limit, m.start, m.end
	kl := h.newKeyLister(start, end, h.opts.MaxSeries)
	vals := map[string]bool{}
	for i := range targets {
		t := &targets[i]
		switch {
		case name == labelName || name == labelStream || (name == labelAggregate && t.metric.hasAggregateLabel()):
			if v := t.fixed.Get(name); v != "" || name == labelName {
				vals[cmpOr(v, t.metric.name)] = true
			}
		case name == labelQuantile && t.metric.kind == sketchd.KindTDigest:
			for _, q := range t.extra {
				vals[q] = true
			}
		case name == labelItem && t.metric.kind == sketchd.KindCMS:
			items, err := h.topItems(r.Context(), t, start, end)
			if err != nil {
				return nil, nil, err
			}
			for _, it := range items {
				vals[it] = true
			}
		case slices.Contains(t.status.Spec.GroupBy, name):
			keys, err := kl.keys(r.Context(), t)
			if err != nil {
				return nil, nil, err
			}
			for _, k := range keys {
				vals[k[name]] = true
			}
		}
	}
	out := nonNil(slices.Sorted(maps.Keys(vals)))
	var warnings []string
	if len(out) > limit {
		out, warnings = out[:limit], []string{truncatedWarning}
	}
	if kl.truncated {
		warnings = []string{truncatedWarning}
	}
	return out, warnings, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// topItems is the item matcher's values, or the top items of a cms
// target over [start, end) merged into one window: for an aggregate an
// alter added, over the part from its since on (none when it ends before).
func (h *Handler) topItems(ctx context.Context, t *target, start, end int64) ([]string, error) {
	if t.extra != nil {
		return t.extra, nil
	}
	spec := &t.status.Spec
	qu := query.Query{Aggregate: t.aggregate, From: start, To: end, Where: t.where}
	if s := spec.Aggregates[t.aggregate].Since; s != nil {
		qu.From = max(qu.From, s.UnixNano())
	}
	if spec.Retention > 0 { // nothing older is read
		qu.From = max(qu.From, end-int64(spec.Retention))
	}
	if qu.From >= qu.To {
		return nil, nil
	}
	res, err := h.querier.Query(ctx, query.TargetOf(t.status), qu)
	var le *query.LimitError
	if errors.As(err, &le) && qu.To-qu.From > int64(h.opts.MetaRange) {
		// "All data" of a long retention without tiers: the top items of
		// the last MetaRange instead, as the extreme times are clamped.
		qu.From = max(qu.From, qu.To-int64(h.opts.MetaRange))
		res, err = h.querier.Query(ctx, query.TargetOf(t.status), qu)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %q aggregate %q: %w", t.status.Spec.Name, t.aggregate, err)
	}
	agg := t.status.Spec.Aggregates[t.aggregate]
	agg.Normalize()
	var out []string
	for _, g := range res.Groups {
		for _, w := range g.Windows {
			if c, ok := w.Sketch.(*sketch.CountMin); ok {
				for _, f := range c.TopK(agg.TopK) {
					out = append(out, string(f.Item))
				}
			}
		}
	}
	return out, nil
}

type metadataJSON struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata answers /api/v1/metadata: the metrics some stream serves
// (limit, metric as Prometheus takes them).
func (h *Handler) metadata(r *http.Request) (any, []string, error) {
	only, _, err := param(r, "metric")
	if err != nil {
		return nil, nil, err
	}
	req, err := h.metaRequest(r, false)
	if err != nil {
		return nil, nil, err
	}
	out := map[string][]metadataJSON{}
	for i := range req.targets {
		m := &req.targets[i].metric
		if (only == "" || only == m.name) && len(out) < req.limit {
			out[m.name] = []metadataJSON{{Type: "gauge", Help: m.help}}
		}
	}
	return out, nil, nil
}
