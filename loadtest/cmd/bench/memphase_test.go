package main

import (
	"os"
	"testing"
)

// TestPhaseStoreWrites: each phase gets the store's writes between the
// counters read at its start and at its end, and none when either read
// failed; the RSS sampling of the test's own process runs meanwhile.
func TestPhaseStoreWrites(t *testing.T) {
	w := newMemWatch(os.Getpid())
	w.phase("a", storeWrites{commit: 10, compaction: 20, ok: true})
	w.phase("b", storeWrites{commit: 15, compaction: 50, ok: true})
	w.phase("c", storeWrites{}) // /metrics did not answer
	w.phase("d", storeWrites{commit: 30, compaction: 90, ok: true})
	ps := w.finish(storeWrites{commit: 40, compaction: 130, ok: true})
	want := []struct {
		ok                 bool
		commit, compaction int64
	}{{true, 5, 30}, {false, 0, 0}, {false, 0, 0}, {true, 10, 40}}
	if len(ps) != len(want) {
		t.Fatalf("%d phases, want %d", len(ps), len(want))
	}
	for i, p := range ps {
		if p.StoreWrites != want[i].ok || p.CommitBytes != want[i].commit || p.CompactionBytes != want[i].compaction {
			t.Errorf("phase %s: store writes %v %d/%d, want %v %d/%d", p.Phase, p.StoreWrites, p.CommitBytes, p.CompactionBytes,
				want[i].ok, want[i].commit, want[i].compaction)
		}
		if p.PeakRSS <= 0 || p.PeakAt.IsZero() || p.AnonAtPeak <= 0 || p.AnonAtPeak > p.PeakRSS {
			t.Errorf("phase %s: peak RSS %d at %v with RssAnon %d: want a sample whose anonymous part is within it", p.Phase, p.PeakRSS, p.PeakAt, p.AnonAtPeak)
		}
	}
}
