package query

// endPanes is the set of (key, pane) pairs of the ragged ends of one read
// range that the scan met, for markEmptyEnds: a bit per key of the plan
// and slot of the ends within the range. It replaced a map of pane cache
// keys (a key string each) that the scan wrote for every pane of the ends,
// and for the panes of the rollup blocks inside them: in the cold
// computation of a series whose from is not on the hour every final slot
// is in them (maxEmptyMarks), and those inserts, the map's growth
// included, were a sixth of BenchmarkFirstSeries/from_17m_past.
//
// The ends within the range are at most two stretches, the head and the
// edge, [hLo, hHi) and [eLo, eHi) in order (the later cut so as not to
// overlap the other): slot i of the first is bit i, slot j of the second
// heads+j, plus the key's index times the slots.
type endPanes struct {
	gran     int64
	hLo, hHi int64
	eLo, eHi int64
	heads    int64 // slots of the head
	slots    int64 // slots of both
	bits     []uint64
}

// newEndPanes returns the empty set of the ragged ends re within the read
// range rg, for nkeys keys.
func newEndPanes(re raggedEnds, rg [2]int64, gran int64, nkeys int) *endPanes {
	a := [2]int64{max(re.from, rg[0]), min(re.headHi, rg[1])}
	b := [2]int64{max(re.edgeLo, rg[0]), min(re.edgeHi, rg[1])}
	a[1], b[1] = max(a[1], a[0]), max(b[1], b[0]) // inverted: empty
	if b[0] < a[0] {
		a, b = b, a
	}
	b[0] = max(b[0], a[1]) // cut the overlap
	b[1] = max(b[1], b[0])
	s := &endPanes{gran: gran, hLo: a[0], hHi: a[1], eLo: b[0], eHi: b[1]}
	s.heads = (s.hHi - s.hLo + gran - 1) / gran
	s.slots = s.heads + (s.eHi-s.eLo+gran-1)/gran
	s.bits = make([]uint64, (s.slots*int64(nkeys)+63)/64)
	return s
}

// index returns the bit of key ki's pane at start, ok false when start is
// not in the ends.
func (s *endPanes) index(ki int, start int64) (int64, bool) {
	var slot int64
	switch {
	case start >= s.hLo && start < s.hHi:
		slot = (start - s.hLo) / s.gran
	case start >= s.eLo && start < s.eHi:
		slot = s.heads + (start-s.eLo)/s.gran
	default:
		return 0, false
	}
	return int64(ki)*s.slots + slot, true
}

// add records key ki's pane at start, if it is in the ends (a nil s
// records nothing: nothing is cached).
func (s *endPanes) add(ki int, start int64) {
	if s == nil {
		return
	}
	if i, ok := s.index(ki, start); ok {
		s.bits[i/64] |= 1 << (i % 64)
	}
}

// has reports whether key ki's pane at start was added.
func (s *endPanes) has(ki int, start int64) bool {
	i, ok := s.index(ki, start)
	return ok && s.bits[i/64]&(1<<(i%64)) != 0
}
