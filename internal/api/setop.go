package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/sketch"
)

// The set-operation endpoint of theta aggregates:
//
//	GET /v1/streams/{stream}/aggregates/{aggregate}/setop
//	    ?a.where=url=/cart&b.where=url=/checkout[&from=&to=&where=]
//	    [&a.from=&a.to=&b.from=&b.to=]
//
// answers, in one request, the distinct counts of two operands A and B (each
// one theta sketch merged over its own range and filter, as the sketch
// endpoint merges) and of A ∪ B, A ∩ B and A \ B, each with its 95%
// interval (sketch.ThetaSetOp). An operand's from, to and where are the
// unprefixed ones unless it gives its own (a.from, a.to); its where is the
// unprefixed where and its own together (different dimensions AND, the
// same dimension OR, as in a query). So "users on mobile this week but not
// last week" is where=device=mobile&a.from=…&b.from=…&b.to=….

// setopOperands are the operands' names, which prefix their parameters.
var setopOperands = [2]string{"a", "b"}

// setopValues splits the request's parameters into one set per operand.
func setopValues(v url.Values) ([2]url.Values, error) {
	var out [2]url.Values
	for i := range out {
		out[i] = url.Values{}
	}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		op, name, prefixed := strings.Cut(k, ".")
		if !prefixed {
			op, name = "", k
		}
		if name != "from" && name != "to" && name != "where" {
			return out, paramError(k, "unknown parameter: the set-operation endpoint takes from, to and where, each also prefixed a. or b. for one operand")
		}
		for i, o := range setopOperands {
			switch {
			case op == o:
				if name == "where" {
					out[i][name] = append(out[i][name], v[k]...)
				} else {
					out[i][name] = v[k] // the operand's own replaces the shared one
				}
			case op == "":
				if _, own := v[o+"."+name]; !own || name == "where" {
					out[i][name] = append(out[i][name], v[k]...)
				}
			}
		}
		if op != "" && op != "a" && op != "b" {
			return out, paramError(k, "unknown operand %q: want a or b", op)
		}
	}
	return out, nil
}

type setopJSON struct {
	Stream    string           `json:"stream"`
	Aggregate string           `json:"aggregate"`
	Watermark *string          `json:"watermark"`
	A         setopOperandJSON `json:"a"`
	B         setopOperandJSON `json:"b"`
	Union     setopResultJSON  `json:"union"`
	Intersect setopResultJSON  `json:"intersect"`
	ANotB     setopResultJSON  `json:"a_not_b"`
}

type setopOperandJSON struct {
	From string `json:"from"`
	To   string `json:"to"`
	// RetainedFrom and Complete: as in a query's answer (resultJSON,
	// windowJSON), only when the range starts before what retention keeps.
	RetainedFrom *string  `json:"retained_from,omitempty"`
	Where        []string `json:"where"` // the operand's where expressions, shared first
	Final        bool     `json:"final"`
	Complete     *bool    `json:"complete,omitempty"`
	Events       uint64   `json:"events"`
	Keys         int      `json:"keys"`
	Panes        int      `json:"panes"`
	setopResultJSON
}

type setopResultJSON struct {
	Distinct distinctJSON `json:"distinct"`
	Theta    thetaJSON    `json:"theta"`
}

func setopResult(e sketch.ThetaEstimate, k int) setopResultJSON {
	a := thetaAnswerFrom(e, k)
	return setopResultJSON{Distinct: a.Distinct, Theta: a.Theta}
}

// setop answers the set operations of two operands of a theta aggregate.
func (s *server) setop(w http.ResponseWriter, r *http.Request) {
	st, err := s.stream(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "aggregate")
	agg, ok := st.Spec.Aggregates[name]
	if !ok {
		s.writeError(w, r, fmt.Errorf("stream %q: %w %q", st.Spec.Name, query.ErrUnknownAggregate, name))
		return
	}
	if agg.Sketch != sketchd.KindTheta {
		s.writeError(w, r, paramError("aggregate", "set operations need a theta aggregate; %q is %s", name, agg.Sketch))
		return
	}
	v, err := s.queryValues(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vals, err := setopValues(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := setopJSON{Stream: st.Spec.Name, Aggregate: name}
	var ops [2]*sketch.Theta
	for i, ov := range vals {
		sk, o, err := s.setopOperand(r, &st, name, agg, ov)
		if err != nil {
			s.writeError(w, r, prefixParamError(err, setopOperands[i]))
			return
		}
		ops[i] = sk
		if i == 0 {
			out.A = o
		} else {
			out.B = o
		}
	}
	k := ops[0].Params().NominalEntries
	for _, x := range []struct {
		op  sketch.ThetaOp
		dst *setopResultJSON
	}{{sketch.ThetaUnion, &out.Union}, {sketch.ThetaIntersect, &out.Intersect}, {sketch.ThetaANotB, &out.ANotB}} {
		e, err := sketch.ThetaSetOp(x.op, ops[0], ops[1])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		*x.dst = setopResult(e, k)
	}
	out.Watermark = timePtr(st.CommittedWatermark)
	s.writeJSON(w, r, http.StatusOK, out)
}

// setopOperand merges one operand's theta sketch.
func (s *server) setopOperand(r *http.Request, st *sketchd.StreamStatus, name string, agg sketchd.Aggregate, v url.Values) (*sketch.Theta, setopOperandJSON, error) {
	var o setopOperandJSON
	p, err := s.parseQuery(v, epSketch, &st.Spec, agg)
	if err != nil {
		return nil, o, err
	}
	res, err := s.querier.Query(r.Context(), target(st), query.Query{Aggregate: name, From: p.from, To: p.to, Filters: p.filters})
	if err != nil {
		return nil, o, err
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Windows) != 1 {
		return nil, o, fmt.Errorf("set operation operand returned %d groups, want one window of one group", len(res.Groups))
	}
	win := &res.Groups[0].Windows[0]
	th, ok := win.Sketch.(*sketch.Theta)
	if !ok {
		return nil, o, fmt.Errorf("set operation operand merged a %s, want theta", win.Sketch.Kind())
	}
	o = setopOperandJSON{
		From: rfc3339(win.Start), To: rfc3339(win.End), Where: v["where"],
		Final: win.Final, Events: win.Events, Keys: res.Keys, Panes: win.Panes,
		setopResultJSON: setopResult(th.Estimate(), th.Params().NominalEntries),
	}
	if o.Where == nil {
		o.Where = []string{}
	}
	o.RetainedFrom, o.Complete = retainedOf(res, win)
	return th, o, nil
}

// prefixParamError says which operand a parameter error is about.
func prefixParamError(err error, op string) error {
	var pe *query.ParamError
	if !errors.As(err, &pe) {
		return err
	}
	return &query.ParamError{Param: pe.Param, Msg: fmt.Sprintf("operand %s: %s", op, pe.Msg)}
}
