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
		for i := from; i < to; i++ {
			for try := 0; ; try++ {
				_, err := js.Publish(ctx, "k.x", []byte("m"), jetstream.WithMsgID(fmt.Sprint(i)))
				if err == nil {
					break
				}
				if try == 100 {
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
	c.Restart(t, victim)

	// The stream leader's view: every message stored, and the restarted
	// node back among the current replicas.
	vc := c.Connect(t, victim)
	vjs, _ := jetstream.New(vc)
	s, err := vjs.Stream(ctx, "K")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 200 {
		t.Errorf("stream holds %d messages after the kill and restart, want 200", info.State.Msgs)
	}
	ok := false
	for _, r := range append(info.Cluster.Replicas, &jetstream.PeerInfo{Name: info.Cluster.Leader, Current: true}) {
		if r.Name == c.Name(victim) && r.Current {
			ok = true
		}
	}
	if !ok {
		t.Errorf("restarted %s is not a current replica: leader %s, replicas %+v", c.Name(victim), info.Cluster.Leader, info.Cluster.Replicas)
	}
}
