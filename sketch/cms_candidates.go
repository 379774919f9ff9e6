package sketch

import (
	"cmp"
	"slices"
)

// Candidates returns how many heavy-hitter candidates the sketch holds and
// how many it can hold, max(4·TopK, 16). Once it has outgrown exact
// counting, TopK ranks only the candidates: a deeper list than capacity
// cannot be answered, and a full set of candidates means items were left
// out. While exact (Exact), every item is counted and listed.
func (c *CountMin) Candidates() (held, capacity int) {
	return len(c.cands), c.capacity()
}

// weaker orders candidates: a is weaker than b when its estimate is lower,
// or equal with a later item (TopK sorts by estimate desc, then item asc).
func weaker(a, b *cand) bool {
	if a.est != b.est {
		return a.est < b.est
	}
	return a.item > b.item
}

func (c *CountMin) offer(item []byte, hash, est uint64) {
	if len(item) > c.maxCandItem() {
		return
	}
	// A full heap takes no item estimated below its root, and no such item
	// is a candidate: a candidate's stored estimate is at least the root's
	// and at most its table estimate (Decode checks it), and Add only
	// offers an item's new estimate, above its old one. Most items of a
	// long-tailed stream stop here, without the look-up in candIdx
	// (BenchmarkCMS/AddTable).
	if len(c.cands) >= c.capacity() && est < c.cands[0].est {
		return
	}
	if j, ok := c.candIdx[string(item)]; ok {
		c.cands[j].est = est // estimates only grow
		c.down(j)
		return
	}
	if len(c.cands) < c.capacity() {
		s := string(item)
		c.cands = append(c.cands, cand{item: s, hash: hash, est: est})
		c.candIdx[s] = len(c.cands) - 1
		c.up(len(c.cands) - 1)
		return
	}
	root := &c.cands[0]
	if est < root.est || (est == root.est && string(item) >= root.item) {
		return
	}
	delete(c.candIdx, root.item)
	s := string(item)
	*root = cand{item: s, hash: hash, est: est}
	c.candIdx[s] = 0
	c.down(0)
}

// candHeap is the candidates as a heapOrder: weakest at the root, candIdx
// kept in step.
type candHeap struct{ c *CountMin }

func (h candHeap) len() int             { return len(h.c.cands) }
func (h candHeap) before(i, j int) bool { return weaker(&h.c.cands[i], &h.c.cands[j]) }
func (h candHeap) swap(i, j int) {
	c := h.c
	c.cands[i], c.cands[j] = c.cands[j], c.cands[i]
	c.candIdx[c.cands[i].item] = i
	c.candIdx[c.cands[j].item] = j
}

func (c *CountMin) up(j int)   { heapUp(candHeap{c}, j) }
func (c *CountMin) down(j int) { heapDown(candHeap{c}, j) }

// setCands keeps the strongest capacity() of cs (estimates already current)
// as the candidate heap, leaving out items longer than maxCandItem.
func (c *CountMin) setCands(cs []cand) {
	cs = slices.DeleteFunc(cs, func(k cand) bool { return len(k.item) > c.maxCandItem() })
	cs = strongest(cs, c.capacity())
	slices.SortFunc(cs, strongerCand)
	// Copy: cs may be a much larger scratch array.
	c.cands = slices.Clone(cs[:min(len(cs), c.capacity())])
	c.candIdx = make(map[string]int, len(c.cands))
	for i := range c.cands {
		c.candIdx[c.cands[i].item] = i
	}
	// A list sorted strongest first is not a min-heap: heapify.
	heapInit(candHeap{c})
}

// strongerCand orders candidates strongest first: by estimate, then item
// (a total order: the items are distinct).
func strongerCand(a, b cand) int {
	if a.est != b.est {
		return cmp.Compare(b.est, a.est)
	}
	return cmp.Compare(a.item, b.item)
}

// strongest returns the k strongest of cs (strongerCand), in no order, in
// cs's array: one pass with a heap of k whose root is the weakest kept,
// where sorting all of them cost most of a promotion (a merge of exact
// sketches past the exact budget: every fresh answer of a top-k panel).
func strongest(cs []cand, k int) []cand {
	if len(cs) <= k {
		return cs
	}
	h := weakestFirst(cs[:k])
	heapInit(h)
	for _, x := range cs[k:] {
		if strongerCand(x, h[0]) < 0 {
			h[0] = x
			heapDown(h, 0)
		}
	}
	return cs[:k]
}

// weakestFirst is a heap of candidates whose root is the weakest.
type weakestFirst []cand

func (h weakestFirst) len() int             { return len(h) }
func (h weakestFirst) before(i, j int) bool { return strongerCand(h[i], h[j]) > 0 }
func (h weakestFirst) swap(i, j int)        { h[i], h[j] = h[j], h[i] }
