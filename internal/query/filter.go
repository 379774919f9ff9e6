package query

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sketchd/sketchd"
)

// FilterOp is how a where filter tests a dimension's value.
type FilterOp uint8

// The filter operators.
const (
	// OpIn keeps keys whose value is one of the filter's values
	// (where=dim=v, where=dim:in=v1,v2).
	OpIn FilterOp = iota
	// OpNotIn keeps keys whose value is none of them (where=dim!=v,
	// where=dim:not_in=v1,v2).
	OpNotIn
)

// Filter is one where condition on a dimension of the key. Filters on the
// same dimension combine as "in any OpIn set, and in no OpNotIn set";
// filters on different dimensions must all hold.
type Filter struct {
	Dim    string
	Op     FilterOp
	Values []string
	// Literal: Values[0] was given with "=" or "!=" (taken literally, commas
	// included). A literal value that looks like a misread list or
	// operator and that no key in the range has is refused, with "=" (it
	// would select nothing) as with "!=" (it would exclude nothing).
	Literal bool
}

// whereSyntax is what a where expression looks like, for error messages.
const whereSyntax = `want dimension=value, dimension!=value, dimension:in=v1,v2 or dimension:not_in=v1,v2`

// ParseWhere parses where expressions against the stream's dimensions:
//
//	dim=value            the value, taken literally (a comma is part of it)
//	dim!=value           any value but this one, taken literally
//	dim:in=v1,v2,...     one of the list; a comma always separates
//	dim:not_in=v1,v2,... none of the list
//
// The operator is read from the text before the first "=": it is a
// dimension name exactly (=), or one followed by "!" or ":in"/":not_in".
// Anything else is refused, with the reason when it names a field that is
// not a dimension.
func ParseWhere(spec *sketchd.Stream, exprs []string) ([]Filter, error) {
	var out []Filter
	for _, e := range exprs {
		f, err := parseFilter(spec, e)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFilter(spec *sketchd.Stream, e string) (Filter, error) {
	left, val, ok := strings.Cut(e, "=")
	if !ok || left == "" {
		return Filter{}, &ParamError{"where", fmt.Sprintf("%s, got %q", whereSyntax, e)}
	}
	isDim := func(d string) bool { return slices.Contains(spec.GroupBy, d) }
	switch {
	case isDim(left):
		return Filter{Dim: left, Op: OpIn, Values: []string{val}, Literal: true}, nil
	case strings.HasSuffix(left, "!") && isDim(left[:len(left)-1]):
		return Filter{Dim: left[:len(left)-1], Op: OpNotIn, Values: []string{val}, Literal: true}, nil
	}
	for _, op := range []struct {
		suffix string
		op     FilterOp
	}{{":in", OpIn}, {":not_in", OpNotIn}} {
		d, ok := strings.CutSuffix(left, op.suffix)
		if !ok || !isDim(d) {
			continue
		}
		vals := strings.Split(val, ",")
		for _, v := range vals {
			if v == "" {
				return Filter{}, &ParamError{"where", fmt.Sprintf("empty element in the list of %q (a comma always separates in a %s list; to match a value holding a comma use %s=value)", e, op.suffix, d)}
			}
		}
		return Filter{Dim: d, Op: op.op, Values: vals}, nil
	}
	return Filter{}, notDimension(spec, "where", e, left)
}

// notDimension explains why a filter or grouping on name is impossible.
func notDimension(spec *sketchd.Stream, param, expr, name string) error {
	base := name
	for _, s := range []string{"!", ":in", ":not_in"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			base = b
			break
		}
	}
	dims := strings.Join(spec.GroupBy, ", ")
	if dims == "" {
		dims = "none"
	}
	why := "a stored pane keeps one sketch per combination of dimension values, so only dimensions can select keys"
	for _, n := range spec.AggregateNames() {
		if a := spec.Aggregates[n]; a.Field == base || n == base {
			why = fmt.Sprintf("%q is read by aggregate %q and folded into its sketches at ingest, so its events cannot be told apart afterwards (to filter on it, make it a dimension: add it to a stream's group_by)", base, n)
			break
		}
	}
	return &ParamError{param, fmt.Sprintf("%q: %q is not a dimension of the stream (dimensions: %s): %s; %s", expr, base, dims, why, whereSyntax)}
}

// filtersOf turns the equality map of Query.Where into filters. Its values
// are exact by construction (the Prometheus API's label matchers, say), not
// text that could be a misread list: they are not Literal, and a value no
// key has simply matches nothing.
func filtersOf(where map[string][]string) []Filter {
	out := make([]Filter, 0, len(where))
	for _, d := range slices.Sorted(maps.Keys(where)) {
		for _, v := range where[d] {
			out = append(out, Filter{Dim: d, Op: OpIn, Values: []string{v}})
		}
	}
	return out
}

// dimFilter is the filters on one dimension, combined.
type dimFilter struct {
	in  map[string]bool // nil: any value
	out map[string]bool
}

func (f *dimFilter) keep(v string) bool {
	if f.in != nil && !f.in[v] {
		return false
	}
	return !f.out[v]
}

// suspicious reports whether a literal value looks like a misread list or
// operator: it holds a comma, or starts with "=", "!" or "(".
func suspicious(v string) bool {
	return strings.Contains(v, ",") || strings.HasPrefix(v, "=") || strings.HasPrefix(v, "!") || strings.HasPrefix(v, "(")
}

// appendFilters encodes filters for a cache key (order-independent).
func appendFilters(b []byte, fs []Filter) []byte {
	enc := make([]string, 0, len(fs))
	for _, f := range fs {
		var e []byte
		e = append(e, byte(f.Op))
		for _, s := range append([]string{f.Dim}, f.Values...) {
			e = binary.AppendUvarint(e, uint64(len(s)))
			e = append(e, s...)
		}
		enc = append(enc, string(e))
	}
	slices.Sort(enc)
	b = binary.AppendUvarint(b, uint64(len(enc)))
	for _, e := range enc {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}
