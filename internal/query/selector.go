package query

import (
	"fmt"
	"strings"

	"github.com/sketchd/sketchd"
)

// selector filters keys by where and projects them onto group_by.
type selector struct {
	dims    []string
	where   map[int]*dimFilter // dimension index -> its filters, combined
	groupBy []string
	gbIdx   []int
	// literals that look misread (see suspicious): dimension index and
	// value -> whether a key of the range has it.
	odd map[oddValue]bool
}

type oddValue struct {
	dim int
	val string
}

func newSelector(dims []string, filters []Filter, groupBy []string) (*selector, error) {
	idx := map[string]int{}
	for i, d := range dims {
		idx[d] = i
	}
	s := &selector{dims: dims, where: map[int]*dimFilter{}, groupBy: groupBy}
	for _, f := range filters {
		i, ok := idx[f.Dim]
		if !ok {
			return nil, &ParamError{"where", fmt.Sprintf("%q is not a dimension of the stream (group_by: %s)", f.Dim, strings.Join(dims, ", "))}
		}
		df := s.where[i]
		if df == nil {
			df = &dimFilter{out: map[string]bool{}}
			s.where[i] = df
		}
		for _, v := range f.Values {
			if f.Literal && suspicious(v) {
				if s.odd == nil {
					s.odd = map[oddValue]bool{}
				}
				s.odd[oddValue{i, v}] = false
			}
			if f.Op == OpNotIn {
				df.out[v] = true
				continue
			}
			if df.in == nil {
				df.in = map[string]bool{}
			}
			df.in[v] = true
		}
	}
	seen := map[string]bool{}
	for _, d := range groupBy {
		i, ok := idx[d]
		if !ok {
			return nil, &ParamError{"group_by", fmt.Sprintf("%q is not a dimension of the stream (group_by: %s)", d, strings.Join(dims, ", "))}
		}
		if seen[d] {
			return nil, &ParamError{"group_by", fmt.Sprintf("%q listed twice", d)}
		}
		seen[d] = true
		s.gbIdx = append(s.gbIdx, i)
	}
	return s, nil
}

// match decodes key, applies where and returns the group's encoded key and
// dimension map.
func (s *selector) match(key string) (string, map[string]string, bool) {
	vals, err := sketchd.DecodeKey(key)
	if err != nil || len(vals) != len(s.dims) {
		return "", nil, false
	}
	for ov, seen := range s.odd {
		if !seen && vals[ov.dim] == ov.val {
			s.odd[ov] = true
		}
	}
	for i, f := range s.where {
		if !f.keep(vals[i]) {
			return "", nil, false
		}
	}
	m := make(map[string]string, len(s.gbIdx))
	g := make([]string, len(s.gbIdx))
	for j, i := range s.gbIdx {
		m[s.dims[i]] = vals[i]
		g[j] = vals[i]
	}
	return sketchd.EncodeKey(g...), m, true
}

// compareKeys orders group keys by the group_by dimensions, in their order.
func compareKeys(dims []string, a, b map[string]string) int {
	for _, d := range dims {
		if c := strings.Compare(a[d], b[d]); c != 0 {
			return c
		}
	}
	return 0
}

// misread refuses a literal value that looks like a list or an operator
// (see suspicious) when no key of the range has it: the answer would be
// empty because the filter was read differently than meant.
func (s *selector) misread() error {
	for ov, seen := range s.odd {
		if seen {
			continue
		}
		d := s.dims[ov.dim]
		return &ambiguousFilter{&ParamError{"where", fmt.Sprintf("no key in the range has %s = %q, so the filter on it selects nothing or excludes nothing; it was taken literally (after \"=\" a comma or a leading =, ! or ( is part of the value); "+
			"for a set write where=%s:in=v1,v2 (or repeat where=%s=v), to exclude a set where=%s:not_in=v1,v2", d, ov.val, d, d, d)}}
	}
	return nil
}
