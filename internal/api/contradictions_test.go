package api

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/sketchd/sketchd/sketch"
)

// TestSlidingFromIsTrue: a sliding query's first window starts before the
// asked from; the answer's from says so (it is the first window's start),
// and every window holds exactly the events of its own range.
func TestSlidingFromIsTrue(t *testing.T) {
	f := newStoreFixture(t)
	from, to := t0.Add(35*time.Minute), t0.Add(65*time.Minute)
	var res resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(from, to), "step=5m", "window=10m"), &res)
	ws := res.Groups[0].Windows
	if len(ws) == 0 {
		t.Fatal("no windows")
	}
	if res.From != ws[0].Start {
		t.Errorf("from %s, but the first window starts at %s", res.From, ws[0].Start)
	}
	if res.To != ws[len(ws)-1].End {
		t.Errorf("to %s, but the last window ends at %s", res.To, ws[len(ws)-1].End)
	}
	if want := from.Add(-5 * time.Minute).Format(time.RFC3339); res.From != want {
		t.Errorf("from %s, want %s (window − step before the asked from)", res.From, want)
	}
	for _, w := range ws {
		start, _ := time.Parse(time.RFC3339, w.Start)
		end, _ := time.Parse(time.RFC3339, w.End)
		if n := len(f.truth(start, end, nil)); w.Events != uint64(n) {
			t.Errorf("window %s..%s: %d events, want %d", w.Start, w.End, w.Events, n)
		}
	}
}

// TestHLLBoundsRoundOutward: distinct-count bounds are whole numbers that
// still cover the truth.
func TestHLLBoundsRoundOutward(t *testing.T) {
	f := newStoreFixture(t)
	var res resT
	f.getJSON(t, aggPath+"users?"+join(rangeQuery(fullFrom, fullTo), "group_by=country,device", "step=10m"), &res)
	n := 0
	for _, g := range res.Groups {
		for _, w := range g.Windows {
			d := w.Distinct
			if d.Lower != math.Floor(d.Lower) || d.Upper != math.Ceil(d.Upper) || d.Lower > d.Estimate || d.Upper < d.Estimate {
				t.Errorf("bounds [%v, %v] around %v are not whole, outward", d.Lower, d.Upper, d.Estimate)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no windows")
	}
	// Outward rounding of the raw bounds, on a sketch past exact counting.
	h, err := sketch.NewHLL(12)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200_000 {
		h.InsertHash(sketch.HashString(fmt.Sprint("u", i)))
	}
	raw, a := h.Estimate(), hllAnswerOf(h, queryParams{})
	if a.Distinct.Lower != math.Floor(raw.Lower) || a.Distinct.Upper != math.Ceil(raw.Upper) {
		t.Errorf("answer [%v, %v], raw [%v, %v]", a.Distinct.Lower, a.Distinct.Upper, raw.Lower, raw.Upper)
	}
}

// TestTopCut: a top list deeper than the sketch's candidates says it was
// cut and why; one the candidates cover is not flagged.
func TestTopCut(t *testing.T) {
	sk, err := sketch.NewCountMin(0.001, 0.01, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		item := []byte(fmt.Sprintf("/p/%d", i))
		sk.Add(sketch.Hash(item), item, uint64(5000/(i+1)+1))
	}
	if sk.Exact() {
		t.Fatal("the sketch still counts exactly; the test needs more items")
	}
	held, capacity := sk.Candidates()
	if held != capacity || capacity != 40 {
		t.Fatalf("candidates %d of %d, want 40 of 40", held, capacity)
	}
	a := cmsAnswerOf(sk, queryParams{top: 100})
	if len(a.Top) != 40 || a.TopCut == nil || a.TopCut.Requested != 100 || a.TopCut.Returned != 40 || a.TopCut.Candidates != 40 || a.TopCut.Reason == "" {
		t.Errorf("top=100: %d items, cut %+v", len(a.Top), a.TopCut)
	}
	if a := cmsAnswerOf(sk, queryParams{top: 40}); a.TopCut != nil || len(a.Top) != 40 {
		t.Errorf("top=40: %d items, cut %+v", len(a.Top), a.TopCut)
	}
	// Through the router: the fixture counts exactly, so a deep list is
	// every item, not cut.
	f := newStoreFixture(t)
	var res resT
	f.getJSON(t, aggPath+"urls?"+join(rangeQuery(fullFrom, fullTo), "top=1000"), &res)
	urls := map[string]bool{}
	for _, e := range f.truth(fullFrom, fullTo, nil) {
		urls[e.url] = true
	}
	if got := len(res.Groups[0].Windows[0].Top); got != len(urls) {
		t.Errorf("top=1000 on an exact sketch: %d items, want all %d", got, len(urls))
	}
}
