package ingest

import (
	"context"
	"testing"

	"github.com/sketchd/sketchd"
)

// TestResetProbeInconclusive: a probe that timed out against a 2.14+
// server (slow under load, or the server went down during the probe)
// must not give up resets in place for good; only a connected server
// older than 2.14 (or of an unknown version) makes the probe conclusive.
// Seen in TestJetStreamOutages under load: the server restart cut the
// first probe, and every later reset deleted and created the durable.
func TestResetProbeInconclusive(t *testing.T) {
	for _, tc := range []struct {
		v            string
		major, minor int
		ok           bool
	}{{"2.15.2", 2, 15, true}, {"2.14.0-beta.1", 2, 14, true}, {"2.10.22", 2, 10, true}, {"", 0, 0, false}, {"x.y", 0, 0, false}} {
		major, minor, ok := serverVersion(tc.v)
		if major != tc.major || minor != tc.minor || ok != tc.ok {
			t.Errorf("serverVersion(%q) = %d, %d, %v; want %d, %d, %v", tc.v, major, minor, ok, tc.major, tc.minor, tc.ok)
		}
	}
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	db := openStore(t, t.TempDir())
	spec := pageviews("probe", true)
	ctx := context.Background()
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	r := runnerOf(t, m, spec.Name)
	if r.probeConclusive() {
		t.Errorf("a probe timeout against server %s concludes resets are unsupported", nc.ConnectedServerVersion())
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if r.probeConclusive() {
		t.Error("a probe timeout while disconnected concludes resets are unsupported")
	}
}
