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
