package ingest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// TestJumpPastStartReset: a consumer positioned past the sequence asked
// for (here the test resets it in place to 5 messages later, between the
// runner's reset and its first pull, as a stale server state or a racing
// reset would) delivers a first message whose delivery sequence is 1, so
// the lost-in-transit check passes. Those 5 messages are still in the
// stream: the jump must not be taken for a filtered subject's gap. The
// runner resets the consumer at the first sequence not received and every
// event is counted once.
func TestJumpPastStartReset(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := pageviews("jump", true)
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	evs := genEvents(7, 60)
	publish := func(evs []event) {
		t.Helper()
		for _, e := range evs {
			if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
				t.Fatal(err)
			}
		}
	}

	var armed atomic.Bool
	var skippedTo atomic.Uint64
	opts := Options{afterPosition: func(durable string, start uint64) {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		// 20 more messages, and the consumer moved 5 past start.
		publish(evs[20:40])
		s, err := js.Stream(ctx, spec.JetStreamStream)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := s.ResetConsumerToSequence(ctx, durable, start+5); err != nil {
			t.Error(err)
			return
		}
		skippedTo.Store(start + 5)
	}}
	m := newManager(t, nc, db, opts)
	m.reset.support.Store(int32(resetSupported))
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	st := mustStatus(t, m, spec.Name)
	r := runnerOf(t, m, spec.Name)
	total := func() uint64 { _, n := paneTotals(t, db, st.ID); return n }

	publish(evs[:20])
	waitFor(t, 20*time.Second, "the first 20 events", func() (bool, string) {
		return total() == 20, fmt.Sprint(total())
	})
	armed.Store(true)
	r.requestReset(r.consumer.epoch.Load()) // positions the consumer at 21
	waitFor(t, 20*time.Second, "the reset", func() (bool, string) {
		return skippedTo.Load() != 0 && !r.consumer.resetting.Load(), "resetting"
	})
	publish(evs[40:])
	waitFor(t, 20*time.Second, "all events", func() (bool, string) {
		return total() == uint64(len(evs)), fmt.Sprintf("%d of %d (the consumer was moved to sequence %d)", total(), len(evs), skippedTo.Load())
	})
	time.Sleep(200 * time.Millisecond) // a few more flushes: nothing more may arrive
	checkPanes(t, db, st.ID, truthOf(evs))
	if j := r.consumer.jumps.Load(); j != 1 {
		t.Errorf("%d jumps over messages still in the stream detected, want 1", j)
	}
	if v := mustMetric(t, m, "sketchd_jetstream_refused_jumps_total", spec.Name); v != 1 {
		t.Errorf("sketchd_jetstream_refused_jumps_total = %v, want 1", v)
	}
	if g := r.consumer.gapped.Load(); g != 0 {
		t.Errorf("%d messages counted as removed by the stream's limits, want 0", g)
	}
}
