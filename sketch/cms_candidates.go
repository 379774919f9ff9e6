package sketch

// Candidates returns how many heavy-hitter candidates the sketch holds and
// how many it can hold, max(4·TopK, 16). Once it has outgrown exact
// counting, TopK ranks only the candidates: a deeper list than capacity
// cannot be answered, and a full set of candidates means items were left
// out. While exact (Exact), every item is counted and listed.
func (c *CountMin) Candidates() (held, capacity int) {
	return len(c.cands), c.capacity()
}
