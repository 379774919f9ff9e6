package sketch_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/sketchd/sketchd/sketch"
	"github.com/sketchd/sketchd/sketch/sketchtest"
)

func thetaEqual(a, b sketch.Sketch) string {
	x, y := a.(*sketch.Theta), b.(*sketch.Theta)
	if x.Count() != y.Count() {
		return fmt.Sprintf("count %d vs %d", x.Count(), y.Count())
	}
	if ex, ey := x.Estimate(), y.Estimate(); ex != ey {
		return fmt.Sprintf("estimate %+v vs %+v", ex, ey)
	}
	return ""
}

func thetaFactory(k int) sketchtest.Factory {
	return sketchtest.Factory{
		New: func() sketch.Sketch { s, _ := sketch.NewTheta(k); return s },
		Insert: func(s sketch.Sketch, i, v uint64) {
			s.(*sketch.Theta).Insert(itemOf(v))
		},
		// Merges are exact: the union's sketch is the sketch of the union.
		Equal: thetaEqual, Close: thetaEqual, Canonical: true,
		Sizes: []int{1, 10, 1000, 40000}, Distinct: 20000,
	}
}

func TestConformanceTheta(t *testing.T) { sketchtest.Run(t, thetaFactory(4096)) }

func TestConformanceTheta16(t *testing.T) { sketchtest.Run(t, thetaFactory(16)) }

func ddEqual(a, b sketch.Sketch) string {
	x, y := a.(*sketch.DDSketch), b.(*sketch.DDSketch)
	if x.Count() != y.Count() || !same(x.Min(), y.Min()) || !same(x.Max(), y.Max()) || x.Bins() != y.Bins() {
		return fmt.Sprintf("count/min/max/bins %d %g %g %d vs %d %g %g %d", x.Count(), x.Min(), x.Max(), x.Bins(), y.Count(), y.Min(), y.Max(), y.Bins())
	}
	for _, q := range tdQs {
		if ex, ey := x.Quantile(q), y.Quantile(q); !same(ex.Value, ey.Value) || !same(ex.Lower, ey.Lower) || !same(ex.Upper, ey.Upper) {
			return fmt.Sprintf("quantile %+v vs %+v", ex, ey)
		}
	}
	return ""
}

func ddFactory(alpha, span float64) sketchtest.Factory {
	return sketchtest.Factory{
		New: func() sketch.Sketch { s, _ := sketch.NewDDSketch(alpha); return s },
		Insert: func(s sketch.Sketch, i, v uint64) {
			// Positive, negative and zero values over many decades.
			x := math.Exp((float64(v%4000)/4000-0.5)*span) * float64(int(i%5)-1)
			if err := s.(*sketch.DDSketch).Add(x); err != nil {
				panic(err)
			}
		},
		// Bin counts add exactly, so merges are exact too.
		Equal: ddEqual, Close: ddEqual, Canonical: true,
		Sizes: []int{1, 10, 1000, 30000}, Distinct: 100000,
	}
}

func TestConformanceDDSketch(t *testing.T) { sketchtest.Run(t, ddFactory(0.01, 40)) }

func TestConformanceDDSketchCollapsing(t *testing.T) {
	// α = 0.5 keeps 38 bins per sign (ln γ = ln 3): values spanning e^±120
	// need 219, so the lowest bins collapse, and merges must still be exact.
	if n := sketch.DDSketchMaxBins(0.5); n != 38 {
		t.Fatalf("DDSketchMaxBins(0.5) = %d", n)
	}
	sketchtest.Run(t, ddFactory(0.5, 240))
}
