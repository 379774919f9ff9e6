package sketch

// A binary heap over a slice, shared by CountMin's candidates (a min-heap
// by estimate that keeps an item → index map) and Reservoir's entries (a
// max-heap by priority). heapOrder says how entries compare and move; it is
// a type parameter, not an interface value, so that each heap's compare
// and swap compile to direct calls.
type heapOrder interface {
	len() int
	// before reports whether entry i belongs nearer the root than entry j.
	before(i, j int) bool
	swap(i, j int)
}

// heapUp moves entry j towards the root until its parent comes before it.
func heapUp[H heapOrder](h H, j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !h.before(j, p) {
			return
		}
		h.swap(j, p)
		j = p
	}
}

// heapDown moves entry j towards the leaves until it comes before both
// children.
func heapDown[H heapOrder](h H, j int) {
	n := h.len()
	for {
		l := 2*j + 1
		if l >= n {
			return
		}
		s := l
		if r := l + 1; r < n && h.before(r, l) {
			s = r
		}
		if !h.before(s, j) {
			return
		}
		h.swap(j, s)
		j = s
	}
}

// heapInit orders all n entries as a heap.
func heapInit[H heapOrder](h H) {
	for i := h.len()/2 - 1; i >= 0; i-- {
		heapDown(h, i)
	}
}
