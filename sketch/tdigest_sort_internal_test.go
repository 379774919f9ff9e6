package sketch

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortCentroids checks sortCentroids against slices.SortFunc with
// cmpCentroid on shapes that take each of its paths: short runs
// (insertion), random and duplicate-heavy values (quicksort), and inputs
// sorted with the depth bound at 0 (heapsort).
func TestSortCentroids(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	shapes := map[string]func(n int) []centroid{
		"random": func(n int) []centroid {
			cs := make([]centroid, n)
			for i := range cs {
				cs[i] = centroid{rng.NormFloat64(), 1 + rng.Uint64N(3)}
			}
			return cs
		},
		"few values": func(n int) []centroid {
			cs := make([]centroid, n)
			for i := range cs {
				cs[i] = centroid{float64(rng.IntN(4)), 1 + rng.Uint64N(2)}
			}
			return cs
		},
		"ascending": func(n int) []centroid {
			cs := make([]centroid, n)
			for i := range cs {
				cs[i] = centroid{float64(i), 1}
			}
			return cs
		},
		"descending": func(n int) []centroid {
			cs := make([]centroid, n)
			for i := range cs {
				cs[i] = centroid{float64(n - i), 1}
			}
			return cs
		},
		"organ pipe": func(n int) []centroid {
			cs := make([]centroid, n)
			for i := range cs {
				cs[i] = centroid{float64(min(i, n-i)), 1}
			}
			return cs
		},
	}
	for name, shape := range shapes {
		for _, n := range []int{0, 1, 2, 3, 11, 12, 13, 100, 500, 2001} {
			for _, heap := range []bool{false, true} {
				cs := shape(n)
				want := slices.Clone(cs)
				slices.SortFunc(want, cmpCentroid)
				if heap {
					heapsortCentroids(cs)
				} else {
					sortCentroids(cs)
				}
				if !slices.Equal(cs, want) {
					t.Errorf("%s, n=%d, heapsort %v: not sorted as slices.SortFunc sorts", name, n, heap)
				}
			}
		}
	}
}

// BenchmarkSortCentroids sorts a t-digest's full buffer (5·δ = 500 values
// at the default compression) with sortCentroids and with slices.SortFunc:
//
//	nice -n 19 go test ./sketch -run '^$' -bench SortCentroids -count 6
func BenchmarkSortCentroids(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	src := make([]centroid, 5*DefaultCompression)
	for i := range src {
		src[i] = centroid{rng.ExpFloat64() * 100, 1}
	}
	cs := make([]centroid, len(src))
	for _, impl := range []struct {
		name string
		sort func([]centroid)
	}{
		{"sortCentroids", sortCentroids},
		{"slices.SortFunc", func(cs []centroid) { slices.SortFunc(cs, cmpCentroid) }},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			for b.Loop() {
				copy(cs, src)
				impl.sort(cs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(cs)), "ns/value")
		})
	}
}
