package sketch_test

import (
	"errors"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestRegistry checks every entry of the kind registry against the kind it
// describes: names, defaults (what New builds from zero parameters), ranges
// (both ends accepted, just outside refused), inputs (Add feeds the kind),
// and the size bound (an empty sketch is below it).
func TestRegistry(t *testing.T) {
	ks := sketch.Kinds()
	if len(ks) == 0 {
		t.Fatal("no kinds")
	}
	for i, k := range ks {
		t.Run(k.Name, func(t *testing.T) {
			if k.Kind != sketch.Kind(i+1) {
				t.Errorf("entry %d is kind %d: the registry must be in Kind order from 1", i, k.Kind)
			}
			if k.Kind.String() != k.Name {
				t.Errorf("String() = %q, want %q", k.Kind.String(), k.Name)
			}
			if got, ok := sketch.KindNamed(k.Name); !ok || got.Kind != k.Kind {
				t.Errorf("KindNamed(%q) = %v, %v", k.Name, got.Kind, ok)
			}
			s, err := sketch.New(sketch.Params{Kind: k.Kind})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range k.Params() {
				if got := q.Get(s.Params()); got != q.Default {
					t.Errorf("%s: New with zero params has %g, registry default %g", q.Name, got, q.Default)
				}
				if msg := q.Check(q.Default); msg != "" {
					t.Errorf("%s: default %g out of range: %s", q.Name, q.Default, msg)
				}
				for _, v := range []float64{q.Min, q.Max} {
					p := sketch.Params{Kind: k.Kind}
					q.Set(&p, v)
					err := p.Validate()
					if v == q.Max && q.MaxOpen {
						if !errors.Is(err, sketch.ErrParams) {
							t.Errorf("%s = %g (open bound) accepted", q.Name, v)
						}
					} else if err != nil {
						t.Errorf("%s = %g (bound) refused: %v", q.Name, v, err)
					}
				}
				below := sketch.Params{Kind: k.Kind}
				q.Set(&below, q.Min/2)
				if q.Integer {
					q.Set(&below, q.Min-1)
				}
				if q.Get(below) != 0 && !errors.Is(below.Validate(), sketch.ErrParams) {
					t.Errorf("%s = %g (below the range) accepted", q.Name, q.Get(below))
				}
				for _, o := range ks {
					if o.Kind == k.Kind {
						continue
					}
					if _, shared := o.Param(q.Name); shared {
						continue
					}
					p := sketch.Params{Kind: o.Kind}
					q.Set(&p, q.Default)
					if !errors.Is(p.Validate(), sketch.ErrParams) {
						t.Errorf("%s accepted by %s, which does not take it", q.Name, o.Name)
					}
				}
			}
			if err := sketch.Add(s, []byte(`"x"`), 1, 7); err != nil {
				t.Fatal(err)
			}
			if s.Count() != 1 {
				t.Errorf("Count after one Add = %d", s.Count())
			}
			b, err := s.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if max := s.Params().MaxEncodedBytes(); len(b) > max || max <= 0 {
				t.Errorf("one value encodes to %d bytes, bound %d", len(b), max)
			}
			if k.Input == 0 {
				t.Error("no input")
			}
		})
	}
	if _, ok := sketch.Kind(0).Info(); ok {
		t.Error("kind 0 has an entry")
	}
	if _, ok := sketch.KindNamed("bloom"); ok {
		t.Error("KindNamed(bloom) found")
	}
	if got := (sketch.Params{Kind: 99}).MaxEncodedBytes(); got != 0 {
		t.Errorf("unknown kind MaxEncodedBytes = %d", got)
	}
	if got, want := sketch.KindNames(), "hll, cms, tdigest, reservoir, theta or ddsketch"; got != want {
		t.Errorf("KindNames() = %q, want %q", got, want)
	}
	// The registry is read-only: Params returns a copy.
	ks[0].Params()[0].Default = -1
	if k, _ := ks[0].Kind.Info(); k.Params()[0].Default == -1 {
		t.Error("Params returned the registry's own slice")
	}
}

func TestParamCheck(t *testing.T) {
	hll, _ := sketch.KindHLL.Info()
	cms, _ := sketch.KindCMS.Info()
	td, _ := sketch.KindTDigest.Info()
	prec, _ := hll.Param("precision")
	eps, _ := cms.Param("epsilon")
	comp, _ := td.Param("compression")
	for _, tc := range []struct {
		q    sketch.Param
		v    float64
		want string
	}{
		{prec, 14, ""},
		{prec, 30, "must be 4..18, got 30"},
		{eps, 1e-6, ""},
		{eps, 1, "must be in [1e-6, 1), got 1"},
		{eps, 1e-7, "must be in [1e-6, 1), got 1e-07"},
		{comp, 5.5, "must be 10..1000, got 5.5"},
	} {
		if got := tc.q.Check(tc.v); got != tc.want {
			t.Errorf("%s.Check(%g) = %q, want %q", tc.q.Name, tc.v, got, tc.want)
		}
	}
}
