package ingest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// aggW is a reservoir of 16 whole events: with events of 2 KB, a pane
// that saw 16 of them stores 32 KB of it.
const aggW = `"w":{"sketch":"reservoir","size":16}`

// paddedEvents returns n seeded events every 100 ms from start over keys
// countries, each with a url of about pad bytes (the reservoirs keep
// whole events, so the panes' size follows it).
func paddedEvents(seed uint64, n, keys, pad int, start time.Time) []event {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]event, n)
	for i := range out {
		b := make([]byte, pad)
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		out[i] = event{
			TS:      start.Add(time.Duration(i) * 100 * time.Millisecond).UnixMilli(),
			Country: fmt.Sprintf("k%02d", rng.IntN(keys)),
			User:    fmt.Sprintf("u%d", rng.IntN(5000)),
			URL:     fmt.Sprintf("/p/%d/%s", rng.IntN(50), b),
			MS:      rng.ExpFloat64() * 100,
		}
	}
	return out
}

// A backfill whose 512-message step touches more pane bytes than one
// store transaction holds (the default store options: 15% of an 8 MiB
// memtable): 1,024 events of 2 KB over 40 keys, so one step's panes carry
// about 40 x (27 KB of w + 17 KB of r). It completes in smaller steps, each
// event applied once, and the added aggregates equal those of a stream
// that had them from the start.
func TestAlterBackfillLargeSteps(t *testing.T) {
	alt := newLifeFixture(t, Options{})
	ref := newLifeFixtureOn(t, alt.ns, Options{})
	if a := alt.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU+","+aggW)); a.status != http.StatusCreated {
		t.Fatalf("create alt: %d %s", a.status, a.body)
	}
	if a := ref.do(t, http.MethodPost, "/v1/streams", aggSpec(strings.Join([]string{aggU, aggW, aggN, aggR}, ","))); a.status != http.StatusCreated {
		t.Fatalf("create ref: %d %s", a.status, a.body)
	}
	const n = 1024 // two steps of 512 messages, had they fit
	from, end := base, base.Add(10*time.Minute)
	publishEvents(t, alt.js, "ev.aa", paddedEvents(61, n, 40, 2000, base))
	alt.waitEvents(t, "u", from, end, n)
	ref.waitEvents(t, "u", from, end, n)
	_, wBefore, _ := alt.exportSketch(t, "w", from, end)

	var steps []sketchd.BackfillStatus
	afterBackfillStep = func(st sketchd.BackfillStatus) bool {
		steps = append(steps, st)
		return false
	}
	t.Cleanup(func() { afterBackfillStep = nil })
	a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"backfill":true,"aggregates":{`+aggN+","+aggR+`}}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	waitFor(t, 30*time.Second, "backfill ended", func() (bool, string) {
		st := alt.spec(t)
		return st.Backfill != nil && st.Backfill.State != "running" && st.State == "running", fmt.Sprintf("%s %+v", st.State, st.Backfill)
	})
	st := alt.spec(t)
	if bf := st.Backfill; bf.State != "done" || bf.From != 1 || bf.To != n || bf.Done != n || bf.Events != n || bf.Error != "" {
		t.Fatalf("backfill %+v: want sequences 1..%d done, %d events", bf, n, n)
	}
	afterBackfillStep = nil
	// Had every step held 512 messages, this test would not test the cut.
	if len(steps) <= n/backfillStepMessages {
		t.Errorf("%d steps: want more than %d (the steps' panes should not fit one transaction)", len(steps), n/backfillStepMessages)
	}
	prev := uint64(0)
	for _, s := range steps {
		if s.Done <= prev || s.Done-prev > backfillStepMessages {
			t.Errorf("steps %+v: each step's progress should move on by 1 to %d messages", steps, backfillStepMessages)
			break
		}
		prev = s.Done
	}
	t.Logf("%d steps, progress %v", len(steps), progressOf(steps))
	for _, name := range []string{"n", "r"} {
		if s := st.Spec.Aggregates[name].Since; s != nil {
			t.Errorf("aggregate %s: since %s after a complete backfill", name, s)
		}
	}
	if _, wAfter, _ := alt.exportSketch(t, "w", from, end); !sameSketch(t, wAfter, wBefore) {
		t.Error("the backfill changed w")
	}
	for _, agg := range []string{"u", "w", "n", "r"} {
		_, got, gn := alt.exportSketch(t, agg, from, end)
		_, want, wn := ref.exportSketch(t, agg, from, end)
		if !sameSketch(t, got, want) || gn != wn {
			t.Errorf("%s: %d bytes (%d events), reference %d bytes (%d events)", agg, len(got), gn, len(want), wn)
		}
	}
}

func progressOf(steps []sketchd.BackfillStatus) []uint64 {
	out := make([]uint64, len(steps))
	for i, s := range steps {
		out[i] = s.Done
	}
	return out
}

// A message whose panes alone do not fit one store transaction fails the
// backfill, saying which message, after the steps before it are applied:
// it neither loops nor is skipped silently, and ingestion resumes.
func TestAlterBackfillMessageTooLarge(t *testing.T) {
	f := newLifeFixture(t, Options{})
	if a := f.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU+","+aggW)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	from, end := base, base.Add(10*time.Minute)
	publishEvents(t, f.js, "ev.aa", paddedEvents(71, 1, 1, 10, base))
	// One message of 40 events of 20 KB, one per key: its panes hold 40 x
	// 20 KB of w, and would hold as much again of r.
	var msg []byte
	for i, e := range paddedEvents(72, 40, 1, 20000, base) {
		e.Country = fmt.Sprintf("k%02d", i)
		msg = append(append(msg, e.json()...), '\n')
	}
	if _, err := f.js.Publish(t.Context(), "ev.aa", msg); err != nil {
		t.Fatal(err)
	}
	f.waitEvents(t, "u", from, end, 41)

	a := f.do(t, http.MethodPatch, "/v1/streams/aa", `{"backfill":true,"aggregates":{`+aggR+`}}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	waitFor(t, 30*time.Second, "backfill ended", func() (bool, string) {
		st := f.spec(t)
		return st.Backfill != nil && st.Backfill.State != "running" && st.State == "running", fmt.Sprintf("%s %+v", st.State, st.Backfill)
	})
	st := f.spec(t)
	if bf := st.Backfill; bf.State != "failed" || bf.Done != 1 || bf.Events != 1 || !strings.Contains(bf.Error, "sequence 2 ") || !strings.Contains(bf.Error, "too large") {
		t.Errorf("backfill %+v: want failed at the message at sequence 2, after sequence 1", bf)
	}
	t.Logf("backfill error: %s", st.Backfill.Error)
	if s := st.Spec.Aggregates["r"].Since; s == nil {
		t.Error("r lost its since after a failed backfill")
	}
	publishEvents(t, f.js, "ev.aa", paddedEvents(73, 5, 1, 10, base.Add(5*time.Minute)))
	f.waitEvents(t, "u", from, end, 46)
}
