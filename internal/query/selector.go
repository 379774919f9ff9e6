package query

import (
	"fmt"
	"strings"

	"github.com/sketchd/sketchd"
)

// selector filters keys by where and projects them onto group_by.
type selector struct {
	dims    []string
	where   map[int]map[string]bool // dimension index -> accepted values
	groupBy []string
	gbIdx   []int
}

func newSelector(dims []string, where map[string][]string, groupBy []string) (*selector, error) {
	idx := map[string]int{}
	for i, d := range dims {
		idx[d] = i
	}
	s := &selector{dims: dims, where: map[int]map[string]bool{}, groupBy: groupBy}
	for d, vals := range where {
		i, ok := idx[d]
		if !ok {
			return nil, &ParamError{"where", fmt.Sprintf("%q is not a dimension of the stream (group_by: %s)", d, strings.Join(dims, ", "))}
		}
		set := map[string]bool{}
		for _, v := range vals {
			set[v] = true
		}
		s.where[i] = set
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
	for i, set := range s.where {
		if !set[vals[i]] {
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
