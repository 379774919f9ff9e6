package decode

// node is a trie of the dotted paths the stream needs. The scanner walks it
// alongside the event: a value whose node has a slot has its span recorded,
// and nothing below a value without a node is looked up.
type node struct {
	slot  int // -1 when no path ends here
	names []string
	kids  []*node
	index map[string]*node // built when there are many kids
}

// indexAbove is the number of children past which a node looks names up in
// a map rather than by scanning.
const indexAbove = 8

func (n *node) child(name []byte) *node {
	if n.index != nil {
		return n.index[string(name)]
	}
	for i, s := range n.names {
		if s == string(name) {
			return n.kids[i]
		}
	}
	return nil
}

// insert returns the node of a dotted path below n, adding the missing
// ones; ok is false for a path with an empty segment.
func (n *node) insert(path string) (_ *node, ok bool) {
	for seg := range splitPath(path) {
		if seg == "" {
			return nil, false
		}
		c := n.child([]byte(seg))
		if c == nil {
			c = n.add(seg)
		}
		n = c
	}
	return n, true
}

// add appends a child for name.
func (n *node) add(name string) *node {
	c := &node{slot: -1}
	n.names = append(n.names, name)
	n.kids = append(n.kids, c)
	if len(n.names) > indexAbove {
		n.index = make(map[string]*node, len(n.names))
		for i, s := range n.names {
			n.index[s] = n.kids[i]
		}
	}
	return c
}

// splitPath yields the segments of a dotted path ("a.b" yields "a", "b";
// "a..b" yields an empty one).
func splitPath(p string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			i := 0
			for i < len(p) && p[i] != '.' {
				i++
			}
			if !yield(p[:i]) || i == len(p) {
				return
			}
			p = p[i+1:]
		}
	}
}
