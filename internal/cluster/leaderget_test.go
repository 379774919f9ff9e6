package cluster

import (
	"context"
	"testing"
	"time"
)

// TestLeaderReadResent: a get from the leader that is never answered (a
// stream electing its leader ignores it; here the proxy between the
// reader and the server loses it) is sent again after leaderAttempt, and
// the next attempt reads the message: one attempt of adminAttempt, or a
// retry of no responders alone, would wait for the answer that never
// comes and fail.
func TestLeaderReadResent(t *testing.T) {
	n := newOneNode(t)
	subject := n.cl.CheckpointSubject(0)
	if _, err := n.admin.Publish(n.ctx, subject, []byte("last")); err != nil {
		t.Fatal(err)
	}
	proxy := newHoldProxy(t, n.ns.Addr().String())
	js := jetStream(t, connect(t, proxy.url(), "reader"))
	proxy.holdRequestsOn("$JS.API.STREAM.MSG.GET")
	go func() {
		for proxy.heldRequests() == 0 && n.ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		proxy.dropConns()
	}()
	ctx, cancel := context.WithTimeout(n.ctx, leaderWait)
	defer cancel()
	start := time.Now()
	m, err := leaderLast(ctx, js, n.cl.Name(), subject)
	if err != nil {
		t.Fatalf("leader read after a lost request: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	if string(m.Data) != "last" {
		t.Fatalf("leader read %q, want %q", m.Data, "last")
	}
	t.Logf("read after a lost request in %s", time.Since(start).Round(time.Millisecond))
}
