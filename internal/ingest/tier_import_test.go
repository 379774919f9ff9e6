package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// TestTierRebuiltAfterImport: an import into a final pane that the rollup
// tiers already hold (store.UpdatePane, behind POST .../import) lowers
// their cursors at once, and the builder rebuilds them: every tier pane
// equals the merge of its sources again, the import included.
func TestTierRebuiltAfterImport(t *testing.T) {
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := tierSpec("timport")
	m := newManager(t, nc, db, Options{})
	ctx := context.Background()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	evs := genEvents(11, 6000) // 60 s, 10 ms apart
	last := evs[len(evs)-1].TS
	evs = append(evs, event{TS: last + 600_000, Country: "DE", User: "x", URL: "/", MS: 1}) // makes the 60 s final
	for i := 0; i < len(evs); i += 50 {
		if _, err := js.Publish(ctx, spec.Subject, joinLines(evs[i:min(i+50, len(evs))])); err != nil {
			t.Fatal(err)
		}
	}
	end := sketchd.PaneStart(time.UnixMilli(last).UnixNano(), int64(30*time.Second)) + int64(30*time.Second)
	built := func(what string) {
		waitFor(t, 20*time.Second, what, func() (bool, string) {
			st, _ := m.Get(ctx, spec.Name)
			return len(st.Rollups) == 2 && st.Rollups[1].BuiltTo >= end, fmt.Sprintf("%+v", st.Rollups)
		})
	}
	built("tiers built")
	info, err := db.Stream(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, before := checkTiers(t, db, info)

	// Import 7 events into the first pane of a key (only the exact count
	// changes: enough to tell a rebuilt tier pane from a stale one).
	first := time.UnixMilli(evs[0].TS).UnixNano()
	key := sketchd.EncodeKey(evs[0].Country)
	res, err := db.UpdatePane(ctx, info.ID, key, sketchd.PaneStart(first, int64(time.Second)), store.Import{ID: "import-1", Aggregate: "users"}, func(p *sketchd.PaneRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("pane %q@%d not stored", key, first)
		}
		p.Events += 7
		return nil
	})
	if err != nil || !res.Applied {
		t.Fatalf("UpdatePane: %v %v", res.Applied, err)
	}
	for i, r := range spec.Rollups {
		c, _, err := db.TierCursor(ctx, info.ID, r.Granularity.Std())
		if err != nil || c > sketchd.PaneStart(first, int64(r.Granularity)) {
			t.Errorf("tier %d: cursor %d after the import, want at most the start of the tier pane holding it (%d): %v", i, c, sketchd.PaneStart(first, int64(r.Granularity)), err)
		}
	}
	waitFor(t, 20*time.Second, "tiers rebuilt", func() (bool, string) {
		c, _, err := db.TierCursor(ctx, info.ID, spec.Rollups[1].Granularity.Std())
		return err == nil && c >= end, fmt.Sprintf("stored cursor %d, want %d (%v)", c, end, err)
	})
	_, after := checkTiers(t, db, info)
	for i := range after {
		if after[i] != before[i]+7 {
			t.Errorf("tier %s: %d events after the import, %d before: want 7 more", spec.Rollups[i].Granularity, after[i], before[i])
		}
	}
}
