package clustertest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}

// TestProcessKill: an R3 stream on three child nats-server processes
// keeps taking publishes while one node is killed with SIGKILL, and the
// restarted node catches up: its replica holds every message.
func TestProcessKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	c := Start(t, 3, Options{Processes: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "K", Subjects: []string{"k.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		t.Helper()
		// Each attempt waits 5 s for its ack: a publish sent just as its
		// connection's node died gets none (the connection moves to
		// another node), and waiting for the whole test's deadline would
		// spend it. The message id makes a retry of a publish that did
		// land a duplicate the stream drops.
		for i := from; i < to; i++ {
			for try := 0; ; try++ {
				actx, acancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := js.Publish(actx, "k.x", []byte("m"), jetstream.WithMsgID(fmt.Sprint(i)))
				acancel()
				if err == nil {
					break
				}
				if try == 20 || ctx.Err() != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	publish(0, 100)
	victim := 1
	c.Kill(t, victim)
	publish(100, 200)
	if err := c.Restart(t, victim); err != nil {
		t.Fatal(err) // no consumer here: its stream must be current
	}

	// The stream leader's view: every message stored, and the restarted
	// node back among the current replicas once it has caught up (it is
	// healthy before its replica is current).
	vc := c.Connect(t, victim)
	vjs, _ := jetstream.New(vc)
	var info *jetstream.StreamInfo
	current := func() bool {
		s, err := vjs.Stream(ctx, "K")
		if err != nil {
			return false
		}
		if info, err = s.Info(ctx); err != nil || info.Cluster == nil {
			return false
		}
		if info.Cluster.Leader == c.Name(victim) {
			return true
		}
		for _, r := range info.Cluster.Replicas {
			if r.Name == c.Name(victim) && r.Current {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for !current() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if info == nil {
		t.Fatal("no stream info from the restarted node")
	}
	if info.State.Msgs != 200 {
		t.Errorf("stream holds %d messages after the kill and restart, want 200", info.State.Msgs)
	}
	if !current() {
		t.Errorf("restarted %s is not a current replica after 30 s: leader %s, replicas %+v", c.Name(victim), info.Cluster.Leader, info.Cluster.Replicas)
	}
}
