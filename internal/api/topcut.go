package api

import (
	"fmt"

	"github.com/sketchd/sketchd/sketch"
)

// topCutJSON says that a count-min top list is shorter than asked, and why.
type topCutJSON struct {
	Requested  int    `json:"requested"`
	Returned   int    `json:"returned"`
	Candidates int    `json:"candidates"`
	Reason     string `json:"reason"`
}

// topCut returns the cut of a top list of returned items when top were
// asked, or nil when the list is whole: the sketch counts exactly (every
// item is listed), or it holds fewer candidates than it can (every item
// seen is one).
func topCut(sk *sketch.CountMin, top, returned int) *topCutJSON {
	held, capacity := sk.Candidates()
	if sk.Exact() || returned >= top || held < capacity {
		return nil
	}
	k := sk.Params().TopK
	return &topCutJSON{Requested: top, Returned: returned, Candidates: capacity,
		Reason: fmt.Sprintf("the sketch keeps max(4·top_k, 16) = %d heavy-hitter candidates (top_k %d): deeper lists need a larger top_k in the aggregate's spec", capacity, k)}
}
