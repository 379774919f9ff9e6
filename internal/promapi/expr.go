package promapi

import (
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// program is a compiled query: a constant, or a selection of sketchd's
// series, possibly merged by sum.
type program struct {
	scalar *float64
	sel    *selection
}

// selection is a vector selector, under sum or bare.
type selection struct {
	metrics  []metric          // the metric names the __name__ matchers accept
	matchers []*labels.Matcher // the other matchers
	// sum: merge the matching keys' sketches into groups of the
	// dimensions in by (or all but those in by, with without).
	sum     bool
	by      []string
	without bool
}

// compile parses q with the upstream PromQL parser and maps it, refusing
// what sketchd cannot answer.
func (h *Handler) compile(q string) (program, error) {
	e, err := h.parser.ParseExpr(q)
	if err != nil {
		return program{}, badData("invalid parameter \"query\": %v", err)
	}
	e = unwrap(e)
	if v, ok, err := constant(e); err != nil {
		return program{}, err
	} else if ok {
		return program{scalar: &v}, nil
	}
	switch e := e.(type) {
	case *parser.VectorSelector:
		sel, err := compileSelector(e)
		return program{sel: sel}, err
	case *parser.AggregateExpr:
		if e.Op != parser.SUM {
			return program{}, unsupported("the %s aggregation: only sum, which merges sketches, is served", e.Op)
		}
		inner, ok := unwrap(e.Expr).(*parser.VectorSelector)
		if !ok {
			return program{}, unsupported("sum over %q: sum takes one sketchd selector", e.Expr.String())
		}
		sel, err := compileSelector(inner)
		if err != nil {
			return program{}, err
		}
		if len(sel.metrics) != 1 {
			return program{}, unsupported("sum over %d metric names: it would add different quantities; select one metric name", len(sel.metrics))
		}
		sel.sum, sel.by, sel.without = true, e.Grouping, e.Without
		return program{sel: sel}, nil
	case *parser.Call:
		return program{}, unsupported("the function %s(): a window's value is its merged sketch's answer; use a sketchd selector, or sum by (...) over one", e.Func.Name)
	case *parser.MatrixSelector, *parser.SubqueryExpr:
		return program{}, unsupported("range selectors and subqueries: the range query's step is the window")
	case *parser.BinaryExpr:
		return program{}, unsupported("binary operators between series (%s)", e.Op)
	}
	return program{}, unsupported("the expression %q", e.String())
}

// unwrap removes parentheses.
func unwrap(e parser.Expr) parser.Expr {
	for {
		switch p := e.(type) {
		case *parser.ParenExpr:
			e = p.Expr
		case *parser.StepInvariantExpr:
			e = p.Expr
		default:
			return e
		}
	}
}

// constant evaluates number literals and arithmetic between them (Grafana
// checks a data source with the query 1+1).
func constant(e parser.Expr) (float64, bool, error) {
	switch e := unwrap(e).(type) {
	case *parser.NumberLiteral:
		return e.Val, true, nil
	case *parser.UnaryExpr:
		v, ok, err := constant(e.Expr)
		if !ok || err != nil {
			return 0, false, err
		}
		if e.Op == parser.SUB {
			v = -v
		}
		return v, true, nil
	case *parser.BinaryExpr:
		l, lok, err := constant(e.LHS)
		if err != nil {
			return 0, false, err
		}
		r, rok, err := constant(e.RHS)
		if err != nil || !lok || !rok {
			return 0, false, err
		}
		switch e.Op {
		case parser.ADD:
			return l + r, true, nil
		case parser.SUB:
			return l - r, true, nil
		case parser.MUL:
			return l * r, true, nil
		case parser.DIV:
			return l / r, true, nil
		case parser.MOD:
			return math.Mod(l, r), true, nil
		case parser.POW:
			return math.Pow(l, r), true, nil
		}
		return 0, false, unsupported("the operator %s between numbers", e.Op)
	}
	return 0, false, nil
}

// compileSelector checks a vector selector and resolves its metric names.
func compileSelector(vs *parser.VectorSelector) (*selection, error) {
	if vs.OriginalOffset != 0 || vs.OriginalOffsetExpr != nil || vs.Timestamp != nil || vs.StartOrEnd != 0 {
		return nil, unsupported("offset and @ modifiers")
	}
	if vs.Anchored || vs.Smoothed {
		return nil, unsupported("anchored and smoothed selectors")
	}
	sel := &selection{}
	var names []*labels.Matcher
	for _, m := range vs.LabelMatchers {
		if m.Name == labelName {
			names = append(names, m)
		} else {
			sel.matchers = append(sel.matchers, m)
		}
	}
	for _, m := range metrics {
		if matchAll(names, m.name) {
			sel.metrics = append(sel.metrics, m)
		}
	}
	return sel, nil
}

// matchAll reports whether v matches every matcher.
func matchAll(ms []*labels.Matcher, v string) bool {
	for _, m := range ms {
		if !m.Matches(v) {
			return false
		}
	}
	return true
}
