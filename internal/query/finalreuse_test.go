package query

import (
	"fmt"
	"testing"
	"time"
)

// TestFinalPaneReuse: at the commit that moves the watermark a minute,
// each key's oldest open pane turns final. Without late events its stored
// blob is the one the previous commit's question decoded as open, so the
// question after the move decodes only the new minute's panes, at most
// one a key: the pane that turned final is taken from the memo's previous
// state (without it: decoded again, up to one more a key). Every answer
// equals a querier's without any cache.
func TestFinalPaneReuse(t *testing.T) {
	const keys = 12
	l, _, q, ref := newLiveMemo(t, 20261208, keys, 3, 0, 12)
	m := int64(time.Minute)
	ask := func(at string) int64 {
		t.Helper()
		to := l.now()
		qu := Query{Aggregate: "users", From: to - 10*m, To: to, Step: m}
		d0 := q.Stats().Decoded
		sameAsReference(t, at, q, ref, l.target, qu)
		return q.Stats().Decoded - d0
	}
	ask("first")
	for round := range 5 {
		l.ingest(t) // the watermark moves a minute; no late events
		n := ask(fmt.Sprintf("round %d", round))
		t.Logf("round %d: %d decoded", round, n)
		if n > keys {
			t.Errorf("round %d: %d sketches decoded after the minute moved, want at most %d (the new minute's pane of each key)", round, n, keys)
		}
	}
}
