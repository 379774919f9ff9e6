package sketch

import (
	"sync"
	"unsafe"
)

// Scratch slices of merges, reused. A query merges the same sketches
// again at every commit (the windows that are not final), and each merge's
// temporary slices were garbage at once: in the load runner's k6 phase (a
// 20 s allocation profile of sketchd at 8566efe) the HLL key unions, their
// encodings' growing lists and the t-digest folds were 250 MB of the
// 1,222 MB the process allocated, a fifth of what paced its GC cycles.
// A merge takes its slices from a pool and puts them back when it returns;
// nothing it returns points into them (the results are copies of the
// right size). A slice grown past maxScratchBytes is let go rather than
// kept, so the pools hold little between bursts (and sync.Pool empties
// itself over two GC cycles).

// maxScratchBytes bounds a pooled slice: 1 MiB, 256k sparse HLL keys or
// 64k t-digest centroids, more than a merge of the default parameters
// uses.
const maxScratchBytes = 1 << 20

// scratchPool is a pool of slices of T of up to maxElems elements.
type scratchPool[T any] struct {
	pool     sync.Pool
	maxElems int
	pointers bool // T holds pointers: put clears the slice's array
}

func newScratchPool[T any]() *scratchPool[T] {
	var zero T
	return &scratchPool[T]{maxElems: maxScratchBytes / max(1, int(unsafe.Sizeof(zero)))}
}

// newPointerScratchPool is newScratchPool for a T that holds pointers
// (strings): what a put slice held is cleared, so the pool pins nothing.
func newPointerScratchPool[T any]() *scratchPool[T] {
	s := newScratchPool[T]()
	s.pointers = true
	return s
}

// get returns an empty slice, with room when one was put back.
func (s *scratchPool[T]) get() *[]T {
	if v, ok := s.pool.Get().(*[]T); ok {
		*v = (*v)[:0]
		return v
	}
	return new([]T)
}

// put gives v back (v and what it held are not to be used after), unless
// it grew past the bound.
func (s *scratchPool[T]) put(v *[]T) {
	if cap(*v) == 0 || cap(*v) > s.maxElems {
		return
	}
	if s.pointers {
		clear((*v)[:cap(*v)])
	}
	s.pool.Put(v)
}
