package ingest

import (
	"context"
	"strings"
	"testing"

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
