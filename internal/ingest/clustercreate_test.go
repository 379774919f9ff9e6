package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// TestClusterConcurrentCreates: three instances on a 3-node NATS cluster
// create one stream name at once, each with its own spec (another
// subject, or another jetstream_max_age), round after round (a delete
// between rounds), each creator starting after a seeded delay of up to
// 4 ms. In every round exactly one create succeeds, the others answer
// ErrExists (409), and once every instance runs the stream its JetStream
// stream has the registered spec's subject, max age and duplicate window.
// Each round has its own subjects and JetStream stream: one the delete
// kept (another instance's consumer still read it) captures the round's
// subject and has its partition transform, which a spec with another
// subject is refused on; and the NATS server (2.15.2) leaves creates and
// look-ups of a name whose R3 stream was just deleted unanswered for 5 s
// at times.
//
// Before clusterCreate stopped updating the JetStream stream ahead of its
// registration, the max_age rounds mostly failed: a creator's update sent
// while another's create was in flight went unanswered for both (5 s), and
// in about half the rounds no create succeeded at all; losers answered 400
// or 503 rather than 409 in both cases.
func TestClusterConcurrentCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("rounds of creates on a 3-node NATS cluster")
	}
	const seed, rounds = 23, 8
	t.Logf("seed %d, %d rounds per case", seed, rounds)
	c := clustertest.Start(t, 3, clustertest.Options{})
	nodes := []*clusterNode{newClusterNode(t, c, 0), newClusterNode(t, c, 1), newClusterNode(t, c, 2)}
	js, err := jetstream.New(c.Connect(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec func(node, round int) string // node's spec of the stream in round
	}{
		{"subject", func(node, round int) string {
			return partSpec("race_subject", fmt.Sprintf("r%dn%d", round, node),
				fmt.Sprintf(`,"jetstream_stream":"RACE_SUBJECT_%d","partitions":2,"partition_by":[1]`, round))
		}},
		{"max_age", func(node, round int) string {
			return partSpec("race_age", fmt.Sprintf("r%d", round),
				fmt.Sprintf(`,"jetstream_stream":"RACE_AGE_%d","partitions":2,"partition_by":[1],"jetstream_max_age":"%dm"`, round, node+1))
		}},
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := range rounds {
				specs := make([]sketchd.Stream, len(nodes))
				delays := make([]time.Duration, len(nodes))
				for i := range nodes {
					if err := json.Unmarshal([]byte(tc.spec(i, round)), &specs[i]); err != nil {
						t.Fatal(err)
					}
					specs[i].Normalize()
					delays[i] = time.Duration(rng.IntN(4000)) * time.Microsecond
				}
				winner := createAtOnce(t, nodes, specs, delays)
				checkJetStreamOfRegistered(t, js, nodes, specs[winner])
				deleteEverywhere(t, nodes, nodes[winner], specs[winner].Name)
				t.Logf("round %d, delays %v: instance %d won", round, delays, winner)
			}
		})
	}
}

// createAtOnce creates specs[i] on nodes[i], each after delays[i], and
// returns the one instance whose create succeeded; every other one must
// have answered ErrExists.
func createAtOnce(t *testing.T, nodes []*clusterNode, specs []sketchd.Stream, delays []time.Duration) int {
	t.Helper()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() {
			time.Sleep(delays[i])
			_, errs[i] = nd.m.Create(context.Background(), specs[i])
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("instances %d and %d both created the stream", winner, i)
		case !errors.Is(err, sketchd.ErrExists):
			t.Errorf("instance %d: %v, want a success or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no create succeeded: %v", errs)
	}
	if t.Failed() {
		t.FailNow()
	}
	return winner
}

// checkJetStreamOfRegistered waits until every instance runs the
// registered spec, which must be want, then checks that its JetStream
// stream has want's subject, max age and duplicate window.
func checkJetStreamOfRegistered(t *testing.T, js jetstream.JetStream, nodes []*clusterNode, want sketchd.Stream) {
	t.Helper()
	ctx := context.Background()
	// The registry's reads may be served by a replica that has not the
	// winner's write yet (KV direct gets): not found is retried.
	var reg sketchd.Stream
	var rev uint64
	waitFor(t, 10*time.Second, "the stream in the registry", func() (bool, string) {
		var err error
		reg, rev, err = nodes[0].m.cluster.Load().reg.Get(ctx, want.Name)
		if err != nil && !errors.Is(err, cluster.ErrStreamNotFound) {
			t.Fatalf("registry: %v", err)
		}
		return err == nil, fmt.Sprint(err)
	})
	if reg.Subject != want.Subject || reg.JetStreamMaxAge != want.JetStreamMaxAge {
		t.Fatalf("registered %s, %v; the winner created %s, %v", reg.Subject, reg.JetStreamMaxAge, want.Subject, want.JetStreamMaxAge)
	}
	for i, nd := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprint("the stream running on instance ", i), func() (bool, string) {
			cs := nd.m.clusterStreamOf(want.Name)
			return cs != nil && cs.cl.Rev == rev, fmt.Sprint(cs != nil)
		})
	}
	// Every partition claimed before the delete that follows: a delete
	// of a durable whose create is still in flight goes unanswered (30 s).
	waitFor(t, 30*time.Second, "every partition owned", func() (bool, string) {
		owned := 0
		for _, nd := range nodes {
			if cs := nd.m.clusterStreamOf(want.Name); cs != nil {
				for p := range want.Partitions {
					if cs.owns(p) {
						owned++
					}
				}
			}
		}
		return owned == want.Partitions, fmt.Sprint(owned)
	})
	s, err := js.Stream(ctx, want.JetStreamStream)
	if err != nil {
		t.Fatalf("JetStream stream: %v", err)
	}
	got, cfg := s.CachedInfo().Config, streamConfig(want)
	if !slices.Equal(got.Subjects, cfg.Subjects) || got.MaxAge != cfg.MaxAge || got.Duplicates != cfg.Duplicates {
		t.Fatalf("JetStream stream: subjects %q, max age %v, duplicates %v; registered spec: %q, %v, %v",
			got.Subjects, got.MaxAge, got.Duplicates, cfg.Subjects, cfg.MaxAge, cfg.Duplicates)
	}
}

// deleteEverywhere deletes name through by and waits until every
// instance removed it (its store's entry goes last).
func deleteEverywhere(t *testing.T, nodes []*clusterNode, by *clusterNode, name string) {
	t.Helper()
	if err := by.m.Delete(context.Background(), name, sketchd.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprint("the stream gone from instance ", i), func() (bool, string) {
			_, err := nd.db.Stream(context.Background(), name)
			return nd.m.clusterStreamOf(name) == nil && err != nil, fmt.Sprint(err)
		})
	}
}

// TestClusterCreateKeptJetStream: a stream deleted with keep_events and
// created again with another jetstream_max_age, on a 3-node NATS cluster
// with two instances: the create, which leaves the kept JetStream stream
// as it is before registering, answers 201, and once both instances run
// the stream its JetStream stream has the new max age (their applySpec
// updated it) and still holds the events published before the delete.
func TestClusterCreateKeptJetStream(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	nodes := []*clusterNode{newClusterNode(t, c, 0), newClusterNode(t, c, 1)}
	js, err := jetstream.New(c.Connect(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	specs := make([]sketchd.Stream, 2)
	for i, age := range []string{"10m", "20m"} {
		body := partSpec("kept", "kept", `,"jetstream_stream":"KEPT","partitions":2,"partition_by":[1],"jetstream_max_age":"`+age+`"`)
		if err := json.Unmarshal([]byte(body), &specs[i]); err != nil {
			t.Fatal(err)
		}
		specs[i].Normalize()
	}
	if _, err := nodes[0].m.Create(ctx, specs[0]); err != nil {
		t.Fatal(err)
	}
	checkJetStreamOfRegistered(t, js, nodes, specs[0])
	publishAcked(t, js, "ev.kept.", genEvents(3, 10))
	if err := nodes[0].m.Delete(ctx, "kept", sketchd.DeleteOptions{KeepEvents: true}); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprint("the stream gone from instance ", i), func() (bool, string) {
			_, err := nd.db.Stream(ctx, "kept")
			return nd.m.clusterStreamOf("kept") == nil && err != nil, fmt.Sprint(err)
		})
	}
	if _, err := nodes[1].m.Create(ctx, specs[1]); err != nil {
		t.Fatal(err)
	}
	checkJetStreamOfRegistered(t, js, nodes, specs[1])
	s, err := js.Stream(ctx, "KEPT")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != 10 {
		t.Errorf("the kept JetStream stream holds %d events, want 10", got)
	}
}
