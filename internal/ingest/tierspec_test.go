package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// TestConfigRollupsLogged: a configuration that changes a stored stream's
// rollup tiers goes through the alter path: the new tiers are stored and
// the change is in the stream's alter log, as a PATCH's would be, also
// after a restart; a restart with the same configuration logs nothing;
// SetRollups logs its change the same way.
func TestConfigRollupsLogged(t *testing.T) {
	nc := connect(t, runNATS(t).ClientURL())
	db := openStore(t, t.TempDir())
	ctx := context.Background()
	withTiers := tierSpec("logged")
	spec := withTiers
	spec.Rollups = nil
	start := func(s sketchd.Stream) *Manager {
		t.Helper()
		m := newManager(t, nc, db, Options{})
		if err := m.Start(ctx, []sketchd.Stream{s}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	alters := func(m *Manager) []sketchd.Alteration {
		t.Helper()
		st, err := m.Get(ctx, spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		return st.Alters
	}
	m := start(spec)
	if a := alters(m); len(a) != 0 {
		t.Fatalf("a new stream has alters %+v", a)
	}
	_ = m.Stop(ctx)

	for i := range 2 { // the second start changes nothing
		m = start(withTiers)
		st, _ := m.Get(ctx, spec.Name)
		a := st.Alters
		if len(st.Spec.Rollups) != len(withTiers.Rollups) || len(a) != 1 || len(a[0].Changes) != 1 ||
			!strings.HasPrefix(a[0].Changes[0], "rollups: [] -> [") || a[0].At.IsZero() {
			t.Fatalf("start %d with tiers configured: rollups %+v, alters %+v; want the tiers and one alter of the rollups", i, st.Spec.Rollups, a)
		}
		_ = m.Stop(ctx)
	}

	m = start(withTiers)
	defer func() { _ = m.Stop(context.Background()) }()
	if _, err := m.SetRollups(ctx, spec.Name, withTiers.Rollups[:1]); err != nil {
		t.Fatal(err)
	}
	if a := alters(m); len(a) != 2 || !strings.HasPrefix(a[1].Changes[0], "rollups: [") {
		t.Fatalf("after SetRollups: alters %+v, want a second alter of the rollups", a)
	}
	if info, _ := db.Stream(ctx, spec.Name); len(info.Spec.Rollups) != 1 || len(info.Alters) != 2 {
		t.Fatalf("stored: rollups %+v, %d alters", info.Spec.Rollups, len(info.Alters))
	}
}

// TestConfigAfterLatenessRaised: a configured stream whose lateness a
// PATCH raised (final_through set) and lowered back starts again with the
// unchanged configuration: final_through, set by sketchd, is not a
// difference; a configured or created spec carrying it is refused.
func TestConfigAfterLatenessRaised(t *testing.T) {
	nc := connect(t, runNATS(t).ClientURL())
	db := openStore(t, t.TempDir())
	ctx := context.Background()
	spec := pageviews("cfg", true)
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	publishEvents(t, js, spec.Subject, genEvents(3, 20))
	waitFor(t, 10*time.Second, "20 events committed", func() (bool, string) {
		st, _ := m.Get(ctx, spec.Name)
		return applied(st) == 20 && st.CommittedWatermark != sketchd.NoTime, fmt.Sprintf("%+v", st.Counters)
	})
	raise, lower := sketchd.Duration(10*spec.AllowedLateness), spec.AllowedLateness
	if _, err := m.Alter(ctx, spec.Name, sketchd.StreamAlter{AllowedLateness: &raise}); err != nil {
		t.Fatal(err)
	}
	st, err := m.Alter(ctx, spec.Name, sketchd.StreamAlter{AllowedLateness: &lower})
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec.FinalThrough == nil {
		t.Fatal("no final_through after raising the lateness")
	}
	_ = m.Stop(ctx)
	m = newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatalf("restart with the same configuration: %v", err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	set := pageviews("set", true)
	set.FinalThrough = st.Spec.FinalThrough
	var fe *sketchd.FieldError
	if _, err := m.Create(ctx, set); !errors.As(err, &fe) || fe.Field != "final_through" {
		t.Errorf("create with final_through: %v, want a field error on final_through", err)
	}
	m2 := newManager(t, nc, openStore(t, t.TempDir()), Options{})
	if err := m2.Start(ctx, []sketchd.Stream{set}); err == nil || !strings.Contains(err.Error(), "final_through") {
		t.Errorf("configured with final_through: %v, want it refused", err)
	}
}
