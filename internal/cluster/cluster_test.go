package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// testSpec returns a valid, normalized stream spec.
func testSpec(name string) sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name = name
	s.Subject = "events." + name
	s.GroupBy = []string{"country"}
	s.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "user"}}
	s.Normalize()
	return s
}

func testOptions(tb testing.TB, name string) Options {
	tb.Helper()
	o, err := Options{Name: name}.Normalize()
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

func jetStream(tb testing.TB, nc *nats.Conn) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// openRegistries opens n registries with options o, instance i connected
// to node i mod the cluster's size.
func openRegistries(ctx context.Context, tb testing.TB, c *clustertest.Cluster, o Options, n int) []*Registry {
	tb.Helper()
	regs := make([]*Registry, n)
	for i := range regs {
		r, err := OpenRegistry(ctx, jetStream(tb, c.Connect(tb, i%c.Len())), o, nil)
		if err != nil {
			tb.Fatal(err)
		}
		regs[i] = r
	}
	return regs
}

func testContext(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// TestRegistry: on a 3-node R3 cluster, three instances (one per node)
// register the same stream at once: exactly one wins. A watcher sees the
// registered streams, the synced mark, then the changes.
func TestRegistry(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	o := testOptions(t, "t")
	regs := openRegistries(ctx, t, c, o, 3)
	if _, err := regs[0].Create(ctx, testSpec("before")); err != nil {
		t.Fatal(err)
	}
	events, err := regs[1].Watch(ctx, ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, events, SpecAdded, "before")
	expect(t, events, SpecSynced, "")

	var wg sync.WaitGroup
	revs := make([]uint64, 3)
	errs := make([]error, 3)
	// Each creator's spec differs (its max_future), so the watched spec
	// names the winner (identical specs: TestRegistryIdenticalCreates).
	specs := make([]sketchd.Stream, len(regs))
	for i, r := range regs {
		specs[i] = testSpec("pageviews")
		specs[i].MaxFuture = sketchd.Duration(time.Duration(i+1) * time.Hour)
		wg.Go(func() { revs[i], errs[i] = r.Create(ctx, specs[i]) })
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrStreamExists):
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creators won, want exactly 1 (errors %v)", wins, errs)
	}
	winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
	ev := expect(t, events, SpecAdded, "pageviews")
	if ev.Spec.Subject != "events.pageviews" || ev.Spec.MaxFuture != specs[winner].MaxFuture || ev.Err != nil {
		t.Fatalf("watched spec %+v, err %v; want creator %d's", ev.Spec, ev.Err, winner)
	}
	if got, rev, err := regs[2].Get(ctx, "pageviews"); err != nil || got.Name != "pageviews" || rev != ev.Revision {
		t.Fatalf("Get = %q rev %d, %v; watched rev %d", got.Name, rev, err, ev.Revision)
	}

	if err := regs[2].Delete(ctx, "pageviews"); err != nil {
		t.Fatal(err)
	}
	expect(t, events, SpecRemoved, "pageviews")
	if err := regs[2].Delete(ctx, "pageviews"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("second delete: %v, want ErrStreamNotFound", err)
	}
	// A re-created name gets a new revision (its changelog's name differs).
	rev2, err := regs[0].Create(ctx, testSpec("pageviews"))
	if err != nil || rev2 <= ev.Revision {
		t.Fatalf("re-create: rev %d (was %d), %v", rev2, ev.Revision, err)
	}
	expect(t, events, SpecAdded, "pageviews")
}

func expect(tb testing.TB, events <-chan SpecEvent, op SpecOp, name string) SpecEvent {
	tb.Helper()
	select {
	case ev := <-events:
		if ev.Op != op || ev.Name != name {
			tb.Fatalf("event %v %q, want %v %q", ev.Op, ev.Name, op, name)
		}
		return ev
	case <-time.After(10 * time.Second):
		tb.Fatalf("no event %v %q within 10s", op, name)
	}
	return SpecEvent{}
}

// TestDiscover: instances announced on different nodes of the cluster are
// found from any node; a stopped one is not; another cluster's are not.
func TestDiscover(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	var anns []*Announcement
	for i, id := range []string{"c", "a", "b"} {
		a, err := Announce(c.Connect(t, i), "t", id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Stop() })
		anns = append(anns, a)
	}
	other, err := Announce(c.Connect(t, 0), "other", "z")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Stop() })

	nc := c.Connect(t, 2)
	waitView(t, ctx, nc, "a,b,c")
	if err := anns[0].Stop(); err != nil { // "c"
		t.Fatal(err)
	}
	if err := anns[0].Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	waitView(t, ctx, nc, "a,b")
}

// waitView discovers until the view is want (joined ids): interest in a
// new service's subjects takes a moment to reach every node.
func waitView(tb testing.TB, ctx context.Context, nc *nats.Conn, want string) {
	tb.Helper()
	var got string
	for range 20 {
		ms, err := Discover(ctx, nc, "t", 250*time.Millisecond)
		if err != nil {
			tb.Fatal(err)
		}
		got = ""
		for i, id := range Instances(ms) {
			if i > 0 {
				got += ","
			}
			got += id
		}
		if got == want {
			return
		}
	}
	tb.Fatalf("view %q, want %q", got, want)
}

func TestOptionsNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Options
		ok   bool
	}{
		{"single node", Options{}, true},
		{"named", Options{Name: "prod"}, true},
		{"bad name", Options{Name: "a.b"}, false},
		{"long name", Options{Name: "0123456789012345678901234567890123"}, false},
		{"short failover", Options{Name: "p", FailoverTimeout: 500 * time.Millisecond}, false},
		{"gather ≥ interval", Options{Name: "p", DiscoveryInterval: 200 * time.Millisecond}, false},
		{"batch too big", Options{Name: "p", MaxBatchMsgs: 1000}, false},
		{"replicas", Options{Name: "p", Replicas: 7}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Normalize()
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err %v is not ErrInvalidOptions", err)
			}
			if tc.ok && (got.Replicas != 3 || got.FailoverTimeout != 5*time.Second || got.MaxBatchMsgs != 999) {
				t.Fatalf("defaults not filled: %+v", got)
			}
		})
	}
}

// TestWatchMembers: the view follows instances joining and leaving, and
// is sent only when it changes.
func TestWatchMembers(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx, cancel := context.WithCancel(testContext(t, time.Minute))
	o := testOptions(t, "t")
	o.DiscoveryInterval, o.DiscoveryGather = 200*time.Millisecond, 100*time.Millisecond
	a, err := Announce(c.Connect(t, 0), "t", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	views := WatchMembers(ctx, c.Connect(t, 1), o, nil)
	waitForView(t, views, "a")
	b, err := Announce(c.Connect(t, 2), "t", "b")
	if err != nil {
		t.Fatal(err)
	}
	waitForView(t, views, "a,b")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	waitForView(t, views, "b")
	b.Stop()
	waitForView(t, views, "")
	cancel()
	for v := range views { // closed once the watcher stops
		_ = v
	}
}

// waitForView reads views until want arrives; consecutive views must
// differ (the watcher sends changes only).
func waitForView(tb testing.TB, views <-chan []string, want string) {
	tb.Helper()
	timeout := time.After(15 * time.Second)
	prev := "\x00"
	for {
		select {
		case v := <-views:
			got := strings.Join(v, ",")
			tb.Logf("view %q", got)
			if got == prev {
				tb.Fatalf("view %q sent twice in a row", got)
			}
			if got == want {
				return
			}
			prev = got
		case <-timeout:
			tb.Fatalf("no view %q within 15s", want)
		}
	}
}
