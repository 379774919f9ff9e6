package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/query"
)

// TestRenderedWindowsMemo: a shared result's final windows from the window
// cache are rendered once per set of render parameters: asked again (as
// after a commit) each such window's bytes are the memo's, the answer is
// byte-equal to one rendered without the memo, and other parameters (q)
// render anew.
func TestRenderedWindowsMemo(t *testing.T) {
	f := newFixture(t)
	q := newQuerier(t, sharedStoreFor(t), query.Options{})
	tg := target(&f.status)
	qu := query.Query{Aggregate: "latency", From: t0.UnixNano(), To: t0.Add(fixtureSpan).UnixNano(),
		Step: int64(5 * time.Minute), GroupBy: []string{"country"}}
	p := queryParams{from: qu.From, to: qu.To, step: qu.Step, window: qu.Step, groupBy: qu.GroupBy, q: []float64{0.5, 0.99}, n: -1}
	memo := newAnswerCache(8 << 20)
	render := func(p queryParams, memo *answerCache) (*resultJSON, []byte) {
		t.Helper()
		res, err := q.QueryShared(t.Context(), tg, qu)
		if err != nil {
			t.Fatal(err)
		}
		out, err := renderResult(&f.status, res, &p, memo)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return out, b
	}
	render(p, memo) // computes the windows, which the window cache keeps
	first, _ := render(p, memo)
	entries := memo.ll.Len()
	if entries == 0 {
		t.Fatal("no window rendered into the memo")
	}
	second, body := render(p, memo)
	if memo.ll.Len() != entries {
		t.Fatalf("asked again: memo grew from %d to %d entries", entries, memo.ll.Len())
	}
	shared := 0
	for gi, g := range second.Groups {
		for wi, w := range g.Windows {
			if &w[0] == &first.Groups[gi].Windows[wi][0] {
				shared++
			}
		}
	}
	if shared != entries {
		t.Fatalf("asked again: %d windows spliced from the memo, want %d", shared, entries)
	}
	if _, plain := render(p, nil); !bytes.Equal(body, plain) {
		t.Fatalf("with the memo:\n%s\nwithout:\n%s", body, plain)
	}
	p9 := p
	p9.q = []float64{0.9}
	_, b9 := render(p9, memo)
	if _, plain9 := render(p9, nil); !bytes.Equal(b9, plain9) || memo.ll.Len() != 2*entries {
		t.Fatalf("other q: equal to a plain render %v; memo %d entries, want %d", bytes.Equal(b9, plain9), memo.ll.Len(), 2*entries)
	}
}
