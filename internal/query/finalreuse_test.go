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

// TestBlockPanesFromCache: an hour's whole-range question merges the
// rollup blocks of its middle stretch, and a block is built from its 15
// panes the minute its last pane turns final. A dashboard that also asks
// the minute series over the hour has those panes decoded in the pane
// cache already (or in the tail memo's previous state), so no minute
// decodes more than the open panes its commit changed and the pane that
// turned final, for every key: at most 40 for 12 keys (without it: a
// block's 15 panes of every key again the minute one completes, 202).
// Every answer equals a querier's without any cache.
func TestBlockPanesFromCache(t *testing.T) {
	const keys, lateness = 12, 3
	l, _, q, ref := newLiveMemo(t, 20261209, keys, lateness, lateness, 50)
	m := int64(time.Minute)
	bound := int64(lateness+2) * keys
	var most int64
	for round := range 20 {
		l.ingest(t)
		to := l.now()
		d0 := q.Stats().Decoded
		for _, qu := range []Query{
			{Aggregate: "users", From: to - 60*m, To: to, Step: m},
			{Aggregate: "users", From: to - 60*m, To: to},
		} {
			sameAsReference(t, fmt.Sprintf("round %d step %v", round, time.Duration(qu.Step)), q, ref, l.target, qu)
		}
		n := q.Stats().Decoded - d0
		if round < 2 { // the first answers decode every pane once
			continue
		}
		most = max(most, n)
		if n > bound {
			t.Errorf("round %d: %d sketches decoded, want at most %d (the open panes and the pane that turned final, of %d keys)", round, n, bound, keys)
		}
	}
	t.Logf("at most %d decoded a minute (bound %d)", most, bound)
}
