package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// TestConsumerResetInPlace restarts a stream, and resets its consumer while
// it runs, once with the server's reset (the durable survives: same
// creation time) and once with the fallback of servers before 2.14 (delete
// + create: a new durable). Both count every event once.
func TestConsumerResetInPlace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		support resetSupport
	}{{"reset", resetUnknown}, {"delete and create", resetUnsupported}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := runNATS(t)
			nc := connect(t, ns.ClientURL())
			db := openStore(t, t.TempDir())
			spec := pageviews("rs", true)
			ctx := context.Background()
			js, _ := jetstream.New(nc)
			evs := genEvents(3, 3000)
			publish := func(evs []event) {
				t.Helper()
				for _, e := range evs {
					if _, err := js.Publish(ctx, spec.Subject, e.json()); err != nil {
						t.Fatal(err)
					}
				}
			}
			start := func() *Manager {
				m := newManager(t, nc, db, Options{})
				m.reset.support.Store(int32(tc.support))
				if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
					t.Fatal(err)
				}
				return m
			}
			created := func(m *Manager) time.Time {
				t.Helper()
				s, err := js.Stream(ctx, spec.JetStreamStream)
				if err != nil {
					t.Fatal(err)
				}
				c, err := s.Consumer(ctx, m.consumerName(spec.Name))
				if err != nil {
					t.Fatal(err)
				}
				return c.CachedInfo().Created
			}

			m := start()
			publish(evs[:1000])
			first := created(m)
			if err := m.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			publish(evs[1000:2000])
			m2 := start()
			defer func() { _ = m2.Stop(ctx) }()
			restarted := created(m2)
			r := m2.running()[0]
			publish(evs[2000:2500])
			r.requestReset(r.consumer.epoch.Load()) // as after a lost delivery
			publish(evs[2500:])

			st, _ := m2.Get(ctx, spec.Name)
			waitFor(t, 20*time.Second, "all events", func() (bool, string) {
				_, total := paneTotals(t, db, st.ID)
				return total == uint64(len(evs)), fmt.Sprintf("%d of %d", total, len(evs))
			})
			time.Sleep(200 * time.Millisecond) // a few more flushes: nothing more may arrive
			if _, total := paneTotals(t, db, st.ID); total != uint64(len(evs)) {
				t.Fatalf("%d events in panes, want %d", total, len(evs))
			}
			if n := r.consumer.resets.Load(); n != 1 {
				t.Errorf("%d resets while running, want 1", n)
			}
			inPlace, recreated := m2.reset.inPlace.Load(), m2.reset.recreate.Load()
			t.Logf("restart and one reset: %d in place, %d deleted and created", inPlace, recreated)
			switch tc.support {
			case resetUnknown:
				if m2.reset.get() != resetSupported || inPlace != 2 || recreated != 0 || !restarted.Equal(first) || !created(m2).Equal(first) {
					t.Errorf("support %d, in place %d, recreated %d; durable created %v, after restart %v, now %v: want one durable reset twice",
						m2.reset.get(), inPlace, recreated, first, restarted, created(m2))
				}
			default:
				if inPlace != 0 || recreated != 2 || restarted.Equal(first) {
					t.Errorf("in place %d, recreated %d; durable created %v, after restart %v: want two recreations", inPlace, recreated, first, restarted)
				}
			}
		})
	}
}

// TestGapCounted: messages that a bound JetStream stream's limits removed
// before sketchd read them are counted exactly; sequences of the stream's
// other subjects that the filtered consumer skips are not.
func TestGapCounted(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "GAPS", Subjects: []string{"events.gap", "other.x"},
		MaxMsgs: 100, Discard: jetstream.DiscardOld}); err != nil {
		t.Fatal(err)
	}
	spec := pageviews("gap", true)
	spec.JetStreamStream = "GAPS"
	evs := genEvents(4, 290)
	publish := func(subject string, e event) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, e.json()); err != nil {
			t.Fatal(err)
		}
	}
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[:50] {
		publish(spec.Subject, e)
	}
	st, _ := m.Get(ctx, spec.Name)
	waitFor(t, 20*time.Second, "first 50", func() (bool, string) {
		_, total := paneTotals(t, db, st.ID)
		return total == 50, fmt.Sprint(total)
	})
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[50:250] { // sequences 51-250: the stream keeps 151-250
		publish(spec.Subject, e)
	}
	m2 := newManager(t, nc, db, Options{})
	if err := m2.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m2.Stop(ctx) }()
	waitFor(t, 20*time.Second, "the kept 100", func() (bool, string) {
		_, total := paneTotals(t, db, st.ID)
		return total == 150, fmt.Sprint(total)
	})
	for _, e := range evs[250:] { // interleaved with another subject: skipped sequences, nothing lost
		publish("other.x", e)
		publish(spec.Subject, e)
	}
	want := uint64(50 + 100 + 40)
	waitFor(t, 20*time.Second, "every kept event", func() (bool, string) {
		_, total := paneTotals(t, db, st.ID)
		return total == want, fmt.Sprintf("%d of %d", total, want)
	})
	if n := m2.running()[0].consumer.gapped.Load(); n != 100 {
		t.Errorf("%d messages counted missing, want 100 (sequences 51-150)", n)
	}
}
