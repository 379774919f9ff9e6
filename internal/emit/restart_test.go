package emit

import (
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestEmitRestartPublishesNoClosedWindowAgain: a close target whose closed
// windows are not final (allowed lateness 10 minutes) starts again after
// its target stream's duplicate window has passed: with no late event
// since, it publishes nothing again. Before its cursor kept the late count
// it had checked them at, every start published every closed window again,
// and the target stream stored each twice (black-box round 4).
func TestEmitRestartPublishesNoClosedWindowAgain(t *testing.T) {
	sp := spec("pr")
	sp.AllowedLateness = sketchd.Duration(10 * time.Minute)
	r := newRig(t, sp)
	r.stopSvc() // it has published nothing: no target stream yet
	r.dupWin = 200 * time.Millisecond
	r.svc, r.stopSvc = r.startService()
	var offs []int64
	for ms := int64(0); ms < 60_000; ms += 500 {
		offs = append(offs, ms)
	}
	r.publish("pr", append(offs, 100_000)...) // windows to 100 s closed, none final
	r.waitEmit("pr", 100*time.Second, 0)
	before := r.read("out.pr")
	ids := map[string]int{}
	for _, m := range before {
		ids[m.id]++
	}
	for restart := range 2 {
		r.stopSvc()
		time.Sleep(3 * r.dupWin) // past the duplicate window
		r.svc, r.stopSvc = r.startService()
		r.waitEmit("pr", 100*time.Second, 0)
		time.Sleep(500 * time.Millisecond) // ten passes
		after := r.read("out.pr")
		if len(after) != len(before) {
			again := 0
			for _, m := range after[len(before):] {
				if ids[m.id] > 0 {
					again++
				}
			}
			t.Fatalf("restart %d: the target holds %d messages, %d before (%d published again under an id it held)", restart+1, len(after), len(before), again)
		}
	}
	// A late event after a restart: its window and group's update is
	// published, one per aggregate, and nothing else (the start learned
	// what the closed windows held).
	r.publish("pr", 30_000)
	r.waitMessages("out.pr", "the late event's updates", func(ms []message) bool { return len(ms) >= len(before)+len(sp.Aggregates) })
	time.Sleep(300 * time.Millisecond)
	after := r.read("out.pr")[len(before):]
	for _, m := range after {
		if !m.flag("update") || m.str("start") != base.Add(30*time.Second).Format(time.RFC3339Nano) {
			t.Errorf("after the late event: %s %s %s update %v", m.str("aggregate"), m.group(), m.str("start"), m.flag("update"))
		}
	}
	if len(after) != len(sp.Aggregates) {
		t.Errorf("the late event gave %d messages, want one update per aggregate (%d)", len(after), len(sp.Aggregates))
	}
	t.Logf("%d messages before the restarts, none published again; %d updates for the late event", len(before), len(after))
}

// TestEmitStatusWithoutEmitter: a stream whose emitter does not run (it is
// starting, backfilling or failed) still lists its targets in the status,
// at their stored cursors (black-box round 4 saw emit missing while a
// backfill ran).
func TestEmitStatusWithoutEmitter(t *testing.T) {
	sp := spec("ps")
	r := newRig(t, sp)
	r.publish("ps", 0, 5_000, 30_000)
	r.waitEmit("ps", 30*time.Second, 20*time.Second)
	st := r.status("ps")
	running := r.svc.Status("ps")[0]
	ghost := st
	ghost.Spec.Name = "not-running" // no emitter by that name: the stored cursors
	got := r.svc.statusOf(t.Context(), &ghost)
	if len(got) != 1 || got[0].Subject != "out.ps" || got[0].ClosedTo < running.ClosedTo || got[0].FinalTo < running.FinalTo || got[0].Messages != 0 {
		t.Errorf("without an emitter: %+v; the running emitter's %+v", got, running)
	}
	ghost.Spec.Emit = nil
	if got := r.svc.statusOf(t.Context(), &ghost); got != nil {
		t.Errorf("a stream without targets: %+v", got)
	}
}
