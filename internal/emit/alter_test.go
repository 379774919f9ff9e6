package emit

import (
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestEmitAggregateAddedByAlter: an aggregate a PATCH adds answers only
// the windows from its Since on; the target publishes it from there and
// keeps publishing the others' earlier windows (the query API refuses the
// new one before its Since, which must not stop the target).
func TestEmitAggregateAddedByAlter(t *testing.T) {
	sp := spec("pa")
	r := newRig(t, sp)
	var offs []int64
	for ms := int64(0); ms < 30_000; ms += 250 {
		offs = append(offs, ms)
	}
	r.publish("pa", offs...)
	r.waitEmit("pa", 20*time.Second, 10*time.Second)
	st, err := r.mgr.Alter(t.Context(), "pa", sketchd.StreamAlter{Aggregates: map[string]*sketchd.Aggregate{
		"users2": {Sketch: sketchd.KindHLL, Field: "user"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	since := st.Spec.Aggregates["users2"].Since
	if since == nil {
		t.Fatal("the added aggregate has no since")
	}
	offs = offs[:0]
	for ms := int64(30_000); ms < 60_000; ms += 250 {
		offs = append(offs, ms)
	}
	r.publish("pa", append(offs, 120_000)...)
	r.waitEmit("pa", 120*time.Second, 110*time.Second)
	if e := r.svc.Status("pa")[0].Error; e != "" {
		t.Errorf("target error: %s", e)
	}
	finals := map[string]map[string]bool{} // aggregate -> window starts
	for _, m := range r.read("out.pa") {
		if !m.flag("final") {
			continue
		}
		a := m.str("aggregate")
		if finals[a] == nil {
			finals[a] = map[string]bool{}
		}
		finals[a][m.str("start")] = true
		if a == "users2" {
			if s, _ := time.Parse(time.RFC3339Nano, m.str("start")); s.Before(*since) {
				t.Errorf("users2 published for the window at %s, before its since %s", m.str("start"), since)
			}
		}
	}
	for w := 0 * time.Second; w < 60*time.Second; w += gran {
		start := base.Add(w).Format(time.RFC3339Nano)
		if !finals["users"][start] {
			t.Errorf("users: no final message for the window at %s", start)
		}
		if base.Add(w).Compare(*since) >= 0 && !finals["users2"][start] {
			t.Errorf("users2: no final message for the window at %s (since %s)", start, since)
		}
	}
}

// TestEmitLatenessRaisedKeepsFinals: a PATCH raising allowed_lateness
// keeps final what the target published as final: a late event for such a
// window is too late (the window's one final message still equals the
// query API's answer, final), while one for a window the old lateness had
// not made final is applied and in that window's final message. Before
// final_through the first was applied and the window answered anew, its
// final message never published again (found by black-box testing).
func TestEmitLatenessRaisedKeepsFinals(t *testing.T) {
	sp := spec("pl")
	r := newRig(t, sp)
	var offs []int64
	for ms := int64(0); ms < 30_000; ms += 250 {
		offs = append(offs, ms)
	}
	r.publish("pl", append(offs, 60_000)...) // watermark base+60s: final through base+50s
	r.waitEmit("pl", 60*time.Second, 50*time.Second)
	st, err := r.mgr.Alter(t.Context(), "pl", sketchd.StreamAlter{AllowedLateness: durationPtr(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if ft := st.Spec.FinalThrough; ft == nil || !ft.Equal(base.Add(50*time.Second)) {
		t.Fatalf("final_through %v, want %v", ft, base.Add(50*time.Second))
	}
	before := r.status("pl").Counters
	r.publish("pl", 15_000, 55_000) // the first window final under the old lateness, the second not
	waitCounters := func(what string, ok func(sketchd.Counters) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for c := r.status("pl").Counters; !ok(c); c = r.status("pl").Counters {
			if time.Now().After(deadline) {
				t.Fatalf("%s: counters %+v (before %+v)", what, c, before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCounters("one too late, one late", func(c sketchd.Counters) bool {
		return c.TooLate == before.TooLate+1 && c.Late == before.Late+1
	})
	r.publish("pl", 420_000) // past the new lateness: everything before is final
	r.waitEmit("pl", 420*time.Second, 60*time.Second)
	finals := map[string][]message{} // window start -> final messages
	for _, m := range r.read("out.pl") {
		if m.flag("final") && m.str("aggregate") == "users" {
			finals[m.str("start")] = append(finals[m.str("start")], m)
		}
	}
	for _, w := range []time.Duration{10 * time.Second, 50 * time.Second} {
		start := base.Add(w).Format(time.RFC3339Nano)
		ms := finals[start]
		var events float64
		for _, m := range ms {
			events += m.events()
			api := r.apiWindow("pl", m, nil)
			if api["final"] != true || api["events"] != m.events() {
				t.Errorf("window %s, group %s: API final %v events %v; final message events %v", start, m.group(), api["final"], api["events"], m.events())
			}
		}
		groups := map[string]int{}
		for _, m := range ms {
			groups[m.group()]++
		}
		for g, n := range groups {
			if n != 1 {
				t.Errorf("window %s, group %s: %d final messages", start, g, n)
			}
		}
		t.Logf("window %s: %d final messages, %v events", start, len(ms), events)
	}
	if n := len(finals[base.Add(50*time.Second).Format(time.RFC3339Nano)]); n == 0 {
		t.Error("the window the late event reached has no final message")
	}
}

func durationPtr(d time.Duration) *sketchd.Duration {
	v := sketchd.Duration(d)
	return &v
}
