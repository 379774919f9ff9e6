package sketch_test

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/sketchd/sketchd/sketch"
	"github.com/sketchd/sketchd/sketch/sketchtest"
)

func itemOf(v uint64) []byte { return strconv.AppendUint([]byte("item-"), v, 10) }

// splitmix64 is a uniform tag from a stream position, as callers derive
// reservoir tags.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hllEqual(a, b sketch.Sketch) string {
	x, y := a.(*sketch.HLL), b.(*sketch.HLL)
	if x.Count() != y.Count() {
		return fmt.Sprintf("count %d vs %d", x.Count(), y.Count())
	}
	if ex, ey := x.Estimate(), y.Estimate(); ex != ey {
		return fmt.Sprintf("estimate %+v vs %+v", ex, ey)
	}
	return ""
}

func hllFactory(p uint8) sketchtest.Factory {
	return sketchtest.Factory{
		New: func() sketch.Sketch { s, _ := sketch.NewHLL(p); return s },
		Insert: func(s sketch.Sketch, i, v uint64) {
			s.(*sketch.HLL).InsertHash(sketch.Hash(itemOf(i / 2)))
		},
		Equal: hllEqual, Close: hllEqual,
		Sizes: []int{1, 10, 1000, 40000}, Distinct: 1000,
	}
}

func TestConformanceHLL(t *testing.T) { sketchtest.Run(t, hllFactory(14)) }

func TestConformanceHLLp4(t *testing.T) { sketchtest.Run(t, hllFactory(4)) }

var cmsProbes = func() [][]byte {
	var out [][]byte
	for v := range uint64(300) {
		out = append(out, itemOf(v))
	}
	return out
}()

func cmsEqual(a, b sketch.Sketch) string {
	x, y := a.(*sketch.CountMin), b.(*sketch.CountMin)
	if x.Count() != y.Count() || x.Exact() != y.Exact() {
		return fmt.Sprintf("count/exact %d %v vs %d %v", x.Count(), x.Exact(), y.Count(), y.Exact())
	}
	for _, it := range cmsProbes {
		if ex, ey := x.Estimate(it), y.Estimate(it); fmt.Sprint(ex) != fmt.Sprint(ey) {
			return fmt.Sprintf("estimate %+v vs %+v", ex, ey)
		}
	}
	if tx, ty := fmt.Sprint(x.TopK(100)), fmt.Sprint(y.TopK(100)); tx != ty {
		return fmt.Sprintf("top-k %s vs %s", tx, ty)
	}
	return ""
}

// cmsClose: equal while both are exact; otherwise every probe within the
// error bound and the same top 3.
func cmsClose(a, b sketch.Sketch) string {
	x, y := a.(*sketch.CountMin), b.(*sketch.CountMin)
	if x.Exact() && y.Exact() {
		return cmsEqual(a, b)
	}
	if x.Count() != y.Count() {
		return fmt.Sprintf("count %d vs %d", x.Count(), y.Count())
	}
	for _, it := range cmsProbes {
		ex, ey := x.Estimate(it), y.Estimate(it)
		d := max(ex.Estimate, ey.Estimate) - min(ex.Estimate, ey.Estimate)
		if d > max(ex.ErrorBound, ey.ErrorBound) {
			return fmt.Sprintf("estimate %+v vs %+v", ex, ey)
		}
	}
	tx, ty := x.TopK(3), y.TopK(3)
	for i := range tx {
		if !bytes.Equal(tx[i].Item, ty[i].Item) {
			return fmt.Sprintf("top-3 %s vs %s", fmt.Sprint(tx), fmt.Sprint(ty))
		}
	}
	return ""
}

func TestConformanceCMS(t *testing.T) {
	sketchtest.Run(t, sketchtest.Factory{
		New: func() sketch.Sketch { s, _ := sketch.NewCountMin(0, 0, 0); return s },
		Insert: func(s sketch.Sketch, i, v uint64) {
			it := itemOf(v)
			s.(*sketch.CountMin).Add(sketch.Hash(it), it, 1+i%3)
		},
		Equal: cmsEqual, Close: cmsClose, Canonical: true,
		Sizes: []int{1, 10, 1000, 30000}, Distinct: 5000,
	})
}

var tdQs = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1}

func tdEqual(a, b sketch.Sketch) string {
	x, y := a.(*sketch.TDigest), b.(*sketch.TDigest)
	if x.Count() != y.Count() || !same(x.Min(), y.Min()) || !same(x.Max(), y.Max()) {
		return fmt.Sprintf("count/min/max %d %g %g vs %d %g %g", x.Count(), x.Min(), x.Max(), y.Count(), y.Min(), y.Max())
	}
	for _, q := range tdQs {
		ex, ey := x.Quantile(q), y.Quantile(q)
		if !same(ex.Value, ey.Value) || !same(ex.RankError, ey.RankError) {
			return fmt.Sprintf("quantile %+v vs %+v", ex, ey)
		}
		if v := ex.Value; !same(x.CDF(v), y.CDF(v)) {
			return fmt.Sprintf("cdf(%g) %g vs %g", v, x.CDF(v), y.CDF(v))
		}
	}
	cx, bx := x.Centroids()
	cy, by := y.Centroids()
	if cx != cy || bx != by {
		return fmt.Sprintf("centroids %d+%d vs %d+%d", cx, bx, cy, by)
	}
	return ""
}

func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// tdClose: exact count, min and max; quantiles whose rank in the other
// digest is within 0.005 (plus discreteness for tiny digests).
func tdClose(a, b sketch.Sketch) string {
	x, y := a.(*sketch.TDigest), b.(*sketch.TDigest)
	if x.Count() != y.Count() || !same(x.Min(), y.Min()) || !same(x.Max(), y.Max()) {
		return fmt.Sprintf("count/min/max %d %g %g vs %d %g %g", x.Count(), x.Min(), x.Max(), y.Count(), y.Min(), y.Max())
	}
	if x.Count() == 0 {
		return ""
	}
	tol := 0.005 + 1.5/float64(x.Count())
	for _, q := range tdQs {
		v := x.Quantile(q).Value
		if r := y.CDF(v); math.Abs(r-q) > tol {
			return fmt.Sprintf("q=%g: value %g has rank %g in the other digest", q, v, r)
		}
	}
	return ""
}

func TestConformanceTDigest(t *testing.T) {
	sketchtest.Run(t, sketchtest.Factory{
		New: func() sketch.Sketch { s, _ := sketch.NewTDigest(0); return s },
		Insert: func(s sketch.Sketch, i, v uint64) {
			if err := s.(*sketch.TDigest).Add(float64(v) + float64(i%1000)/1000); err != nil {
				panic(err)
			}
		},
		Equal: tdEqual, Close: tdClose, Canonical: true,
		Sizes: []int{1, 10, 400, 5000, 50000}, Distinct: 100000,
	})
}

func resEqual(a, b sketch.Sketch) string {
	x, y := a.(*sketch.Reservoir), b.(*sketch.Reservoir)
	if x.Population() != y.Population() {
		return fmt.Sprintf("population %d vs %d", x.Population(), y.Population())
	}
	if sx, sy := fmt.Sprint(x.Tags(), x.Sample()), fmt.Sprint(y.Tags(), y.Sample()); sx != sy {
		return fmt.Sprintf("sample %s vs %s", sx, sy)
	}
	return ""
}

func resFactory(weighted bool) sketchtest.Factory {
	return sketchtest.Factory{
		New: func() sketch.Sketch { s, _ := sketch.NewReservoir(0, weighted); return s },
		Insert: func(s sketch.Sketch, i, v uint64) {
			s.(*sketch.Reservoir).Add(splitmix64(i), itemOf(v), float64(1+v%5))
		},
		Equal: resEqual, Close: resEqual, Canonical: true,
		Sizes: []int{1, 10, 1000, 20000}, Distinct: 1000,
	}
}

func TestConformanceReservoir(t *testing.T) { sketchtest.Run(t, resFactory(false)) }

func TestConformanceReservoirWeighted(t *testing.T) { sketchtest.Run(t, resFactory(true)) }
