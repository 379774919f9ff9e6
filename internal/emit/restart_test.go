package emit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/query"
)

// TestEmitRestartPublishesNoClosedWindowAgain: a close target whose closed
// windows are not final (allowed lateness 10 minutes) starts again after
// its target stream's duplicate window has passed: with no late event
// since, it publishes nothing again. Before its cursor kept the late count
// it had checked them at, every start published every closed window again,
// and the target stream stored each twice (black-box round 4). The first
// late event after a start republishes the closed windows as updates
// (the start did not learn what they hold), the late one with its event.
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
	// A late event after the restarts: updates, among them its window's
	// with one event more than at close.
	closes := map[string]float64{}
	for _, m := range before {
		closes[m.str("aggregate")+"/"+m.group()+"/"+m.str("start")] = m.events()
	}
	late := base.Add(30 * time.Second).Format(time.RFC3339Nano)
	r.publish("pr", 30_000)
	r.waitMessages("out.pr", "the late event's updates", func(ms []message) bool {
		n := 0
		for _, m := range ms[len(before):] {
			if m.str("start") == late && m.events() == closes[m.str("aggregate")+"/"+m.group()+"/"+late]+1 {
				n++
			}
		}
		return n == len(sp.Aggregates)
	})
	after := r.read("out.pr")[len(before):]
	for _, m := range after {
		if !m.flag("update") || m.flag("final") {
			t.Errorf("after the late event: %s %s %s update %v final %v", m.str("aggregate"), m.group(), m.str("start"), m.flag("update"), m.flag("final"))
		}
	}
	t.Logf("%d messages before the restarts, none published again; %d updates after the late event", len(before), len(after))
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

// checkpointHook runs hook before the first Checkpoint read.
type checkpointHook struct {
	Store
	once sync.Once
	hook func()
}

func (h *checkpointHook) Checkpoint(ctx context.Context, id uint32) (sketchd.Checkpoint, bool, error) {
	h.once.Do(h.hook)
	return h.Store.Checkpoint(ctx, id)
}

// TestEmitCloseAfterLateCountRead: a late event committed after the
// stream's status was taken but before the target read the late count is
// in the close message of its window, or updates it. The close pass read
// with the status's last commit, so a result cached at that commit (here a
// query made just before) served the window without the event while the
// count recorded it: no update ever followed (found by review).
func TestEmitCloseAfterLateCountRead(t *testing.T) {
	sp := spec("sc")
	r := newRig(t, sp)
	r.stopSvc()
	var offs []int64
	for ms := int64(0); ms < 100_000; ms += 500 {
		offs = append(offs, ms)
	}
	r.publish("sc", append(offs, 100_000)...)
	deadline := time.Now().Add(20 * time.Second)
	for r.status("sc").CommittedWatermark < base.Add(100*time.Second).UnixNano() {
		if time.Now().After(deadline) {
			t.Fatal("the events were not committed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w := int64(gran)
	at := base.Add(90 * time.Second)
	hs := &checkpointHook{Store: r.db}
	hs.hook = func() {
		st := r.status("sc")
		// The window at 90 s, cached at the status's commit.
		if _, err := r.q.QueryMulti(t.Context(), query.TargetOf(&st), query.Query{From: at.UnixNano(), To: at.UnixNano() + w,
			GroupBy: sp.EmitGroupBy(&sp.Emit[0]), Step: w, Window: w}, sp.AggregateNames()); err != nil {
			t.Error(err)
		}
		r.publish("sc", 95_000)
		for time.Now().Before(deadline) {
			if cp, _, _ := r.db.Checkpoint(t.Context(), st.ID); cp.Counters.Late > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("the late event was not committed")
	}
	svc := New(r.mgr, r.q, hs, api.NewEmitRenderer(api.Limits{}), func() *nats.Conn { return r.nc }, testLogger(t), Options{Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for st := svc.Status("sc"); len(st) == 0 || st[0].ClosedTo < base.Add(100*time.Second).UnixNano(); st = svc.Status("sc") {
		if time.Now().After(deadline) {
			t.Fatalf("emit status %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.waitMessages("out.sc", "the window at 90 s with the late event", func(ms []message) bool {
		total := 0.0
		last := map[string]float64{}
		for _, m := range ms {
			if m.str("aggregate") == "users" && m.str("start") == at.Format(time.RFC3339Nano) {
				last[m.group()] = m.events() // the latest message per group
			}
		}
		for _, v := range last {
			total += v
		}
		return total == 21 // 20 events at 90-99.5 s and the late one
	})
}
