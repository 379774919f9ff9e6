package query

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sketchd/sketchd"
)

func TestParseWhere(t *testing.T) {
	spec := sketchd.Stream{GroupBy: []string{"country", "a!", "ua"},
		Aggregates: map[string]sketchd.Aggregate{"urls": {Sketch: sketchd.KindCMS, Field: "url"}}}
	tests := []struct {
		in      string
		want    Filter
		errPart string
	}{
		{"country=DE", Filter{"country", OpIn, []string{"DE"}, true}, ""},
		{"country=", Filter{"country", OpIn, []string{""}, true}, ""},
		{"country!=DE", Filter{"country", OpNotIn, []string{"DE"}, true}, ""},
		{"country:in=DE,FR", Filter{"country", OpIn, []string{"DE", "FR"}, false}, ""},
		{"country:not_in=DE", Filter{"country", OpNotIn, []string{"DE"}, false}, ""},
		{"ua=Mozilla/5.0 (X11, Linux)", Filter{"ua", OpIn, []string{"Mozilla/5.0 (X11, Linux)"}, true}, ""},
		{"country=a=b", Filter{"country", OpIn, []string{"a=b"}, true}, ""},
		// A dimension named "a!" is matched exactly before "!" is an operator.
		{"a!=x", Filter{"a!", OpIn, []string{"x"}, true}, ""},
		{"a!!=x", Filter{"a!", OpNotIn, []string{"x"}, true}, ""},
		{"country:in=", Filter{}, "empty element"},
		{"country:in=DE,", Filter{}, "empty element"},
		{"url=/x", Filter{}, `read by aggregate "urls"`},
		{"url!=/x", Filter{}, `"url" is not a dimension`},
		{"=DE", Filter{}, "want dimension=value"},
		{"country", Filter{}, "want dimension=value"},
		{"Country=DE", Filter{}, "not a dimension"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWhere(&spec, []string{tt.in})
			if tt.errPart != "" {
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Param != "where" || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("err %v, want a where ParamError with %q", err, tt.errPart)
				}
				return
			}
			if err != nil || len(got) != 1 {
				t.Fatalf("ParseWhere = %v, %v", got, err)
			}
			g := got[0]
			if g.Dim != tt.want.Dim || g.Op != tt.want.Op || !slices.Equal(g.Values, tt.want.Values) || g.Literal != tt.want.Literal {
				t.Errorf("got %+v, want %+v", g, tt.want)
			}
		})
	}
}

// TestSelectorFilters: the combination rule of filters on one dimension,
// and the misread literal, on keys given directly.
func TestSelectorFilters(t *testing.T) {
	dims := []string{"country", "device"}
	spec := sketchd.Stream{GroupBy: dims}
	keys := []string{}
	for _, c := range []string{"DE", "FR", "US", "a,b"} {
		for _, d := range []string{"m", "d"} {
			keys = append(keys, sketchd.EncodeKey(c, d))
		}
	}
	tests := []struct {
		where   []string
		want    int
		misread bool
	}{
		{[]string{"country:in=DE,FR", "country!=FR"}, 2, false},
		{[]string{"country:not_in=DE", "country!=US", "device=m"}, 2, false},
		{[]string{"country=DE", "country=FR"}, 4, false},
		{[]string{"country=a,b"}, 2, false},   // a key has it: answered as written
		{[]string{"country=DE,FR"}, 0, true},  // none has it: refused
		{[]string{"device==m"}, 0, true},      // likewise
		{[]string{"country!=DE,FR"}, 8, true}, // a negation that excludes nothing is refused too
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.where, "&"), func(t *testing.T) {
			fs, err := ParseWhere(&spec, tt.where)
			if err != nil {
				t.Fatal(err)
			}
			s, err := newSelector(dims, fs, nil)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, k := range keys {
				if _, _, ok := s.match(k); ok {
					n++
				}
			}
			err = s.misread()
			if n != tt.want || (err != nil) != tt.misread || (err != nil && !errors.Is(err, ErrAmbiguousFilter)) {
				t.Errorf("%d keys, misread %v; want %d, %v", n, err, tt.want, tt.misread)
			}
		})
	}
}
