package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// Emit targets (sketchd.Emit, pushed by internal/emit) publish the query
// API's window answers: a target's params are parsed by the query
// parameters' own parser (parseQuery, per aggregate, a kind parameter for
// the aggregates of its kinds as in GET /v1/streams/{stream}/query), and a
// message is a window rendered by renderWindow with where it belongs
// (stream, aggregate, group key) and whether it updates an earlier one.

// EmitRenderer renders emit targets' messages. It is safe for concurrent
// use.
type EmitRenderer struct{ s *server }

// NewEmitRenderer returns a renderer under limits l (zero fields:
// DefaultLimits), the API's own limits on kind parameters.
func NewEmitRenderer(l Limits) *EmitRenderer {
	return &EmitRenderer{s: &server{limits: l.withDefaults(), now: time.Now}}
}

// EmitPlan is an emit target's aggregates, sorted, each with its parsed
// kind parameters.
type EmitPlan struct {
	Aggregates []string
	params     []queryParams
}

// Plan parses target e of stream spec. Its errors are *sketchd.FieldError
// naming field (e.g. "emit[0]"), joined.
func (r *EmitRenderer) Plan(spec *sketchd.Stream, e *sketchd.Emit, field string) (*EmitPlan, error) {
	names := spec.EmitAggregates(e)
	v := url.Values{}
	for _, k := range slices.Sorted(maps.Keys(e.Params)) {
		if len(paramKinds(k)) == 0 {
			return nil, &sketchd.FieldError{Field: field + ".params." + k, Msg: "not a kind parameter of the query API (q, cdf, rank, trim, top, item, n, seed)"}
		}
		v[k] = []string{e.Params[k]}
	}
	kinds := map[sketchd.AggregateKind]bool{}
	for _, n := range names {
		agg, ok := spec.Aggregates[n]
		if !ok {
			return nil, &sketchd.FieldError{Field: field + ".aggregates", Msg: fmt.Sprintf("no aggregate %q in the stream", n)}
		}
		kinds[agg.Sketch] = true
	}
	if err := checkMultiParams(v, kinds); err != nil {
		return nil, paramFieldError(field, err)
	}
	p := &EmitPlan{Aggregates: names, params: make([]queryParams, len(names))}
	for i, n := range names {
		agg := spec.Aggregates[n]
		own := url.Values{}
		for k, vals := range v {
			if slices.Contains(paramKinds(k), agg.Sketch) {
				own[k] = vals
			}
		}
		qp, err := r.s.parseQuery(own, epQuery, spec, agg)
		if err != nil {
			return nil, paramFieldError(field, err)
		}
		p.params[i] = qp
	}
	return p, nil
}

// paramFieldError names the target's params field of a parameter error.
func paramFieldError(field string, err error) error {
	var pe *query.ParamError
	if errors.As(err, &pe) {
		return &sketchd.FieldError{Field: field + ".params." + pe.Param, Msg: pe.Msg}
	}
	return &sketchd.FieldError{Field: field + ".params", Msg: err.Error()}
}

// CheckEmit parses every emit target of spec (see Plan): the kind
// parameters are the API's to check, so a stream created from the
// configuration or by POST /v1/streams is refused with the same messages.
func CheckEmit(spec *sketchd.Stream) error {
	r := NewEmitRenderer(Limits{})
	var errs []error
	for i := range spec.Emit {
		if _, err := r.Plan(spec, &spec.Emit[i], fmt.Sprintf("emit[%d]", i)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// emitJSON is one emitted message: the window answer of GET
// /v1/streams/{stream}/aggregates/{aggregate} (windowJSON, its members
// inline) and where it belongs.
type emitJSON struct {
	Stream    string            `json:"stream"`
	Aggregate string            `json:"aggregate"`
	Kind      string            `json:"kind"`
	Key       map[string]string `json:"key"`
	// Update is true when an earlier message of this window and group was
	// published (at its close): this one supersedes it.
	Update bool `json:"update"`
	windowJSON
}

// Message renders window w of group key of the plan's i-th aggregate,
// whose query result is res.
func (r *EmitRenderer) Message(stream string, p *EmitPlan, i int, res *query.Result, key map[string]string, w *query.Window, update bool) ([]byte, error) {
	wj, err := renderWindow(w, &p.params[i])
	if err != nil {
		return nil, err
	}
	if key == nil {
		key = map[string]string{}
	}
	return json.Marshal(emitJSON{Stream: stream, Aggregate: p.Aggregates[i], Kind: string(res.Kind), Key: key, Update: update, windowJSON: wj})
}

// emitStatusJSON is an emit target's progress in the stream status.
type emitStatusJSON struct {
	Subject    string  `json:"subject"`
	ClosedTo   *string `json:"closed_to"`
	FinalTo    *string `json:"final_to"`
	Messages   uint64  `json:"messages"`
	Duplicates uint64  `json:"duplicates"`
	Errors     uint64  `json:"errors"`
	Error      string  `json:"error,omitempty"`
}

func renderEmitStatus(es []sketchd.EmitStatus) []emitStatusJSON {
	if len(es) == 0 {
		return nil
	}
	out := make([]emitStatusJSON, len(es))
	for i, e := range es {
		out[i] = emitStatusJSON{Subject: e.Subject, ClosedTo: timePtr(e.ClosedTo), FinalTo: timePtr(e.FinalTo),
			Messages: e.Messages, Duplicates: e.Duplicates, Errors: e.Errors, Error: e.Error}
	}
	return out
}
