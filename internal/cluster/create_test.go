package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// registryNodes is a registry bucket on one server (R1) or on a 3-node
// cluster (R3), served by ns (the cluster's first node).
type registryNodes struct {
	ns *server.Server
	o  Options
}

func startRegistryNodes(t *testing.T, nodes int) registryNodes {
	t.Helper()
	if nodes == 1 {
		return registryNodes{ns: startServer(t), o: singleNode(t)}
	}
	c := clustertest.Start(t, nodes, clustertest.Options{})
	return registryNodes{ns: c.Servers[0], o: testOptions(t, "t")}
}

// open is a registry on its own connection to url, named name.
func (n registryNodes) open(ctx context.Context, t *testing.T, url, name string) *Registry {
	t.Helper()
	r, err := OpenRegistry(ctx, jetStream(t, connect(t, url, name)), n.o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var registryTopologies = []struct {
	name  string
	nodes int
}{{"one server", 1}, {"R3", 3}}

// TestKeyCreateResend: a create's write sent again after it landed (a
// resend whose first attempt's answer was lost), with its id, returns
// the same revision and stores nothing more: on one server (the resend
// fails its expected sequence; the key's last message carries the id)
// and on a 3-node R3 bucket (answered as a duplicate); for a new name,
// for resends at once, and for a name whose stream was deleted (its
// delete marker expected, or 0 again as a fresh attempt would).
func TestKeyCreateResend(t *testing.T) {
	for _, tc := range registryTopologies {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, time.Minute)
			n := startRegistryNodes(t, tc.nodes)
			r := n.open(ctx, t, n.ns.ClientURL(), "registry")
			if w := r.bucket.CachedInfo().Config.Duplicates; w <= 0 {
				t.Fatalf("bucket's duplicate window %v: a resend would not be recognized as a duplicate", w)
			}

			c := keyCreateOf(t, r, "fresh")
			rev := attemptTwice(ctx, t, c)
			checkLastWrite(ctx, t, r, "fresh", rev)

			c = keyCreateOf(t, r, "together")
			revs := make([]uint64, 4)
			errs := make([]error, len(revs))
			var wg sync.WaitGroup
			for i := range revs {
				a := *c // one create's attempts, sent at once
				wg.Go(func() { revs[i], errs[i] = a.attempt(ctx) })
			}
			wg.Wait()
			for i := range revs {
				if errs[i] != nil || revs[i] != revs[0] {
					t.Fatalf("concurrent resends: revisions %v, errors %v; want one revision, no error", revs, errs)
				}
			}
			checkLastWrite(ctx, t, r, "together", revs[0])

			if _, err := r.Create(ctx, testSpec("gone")); err != nil {
				t.Fatal(err)
			}
			if err := r.Delete(ctx, "gone"); err != nil {
				t.Fatal(err)
			}
			c = keyCreateOf(t, r, "gone")
			rev = attemptTwice(ctx, t, c)
			checkLastWrite(ctx, t, r, "gone", rev)
		})
	}
}

func keyCreateOf(t *testing.T, r *Registry, name string) *keyCreate {
	t.Helper()
	b, err := json.Marshal(testSpec(name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := newKeyCreate(r.js, r.bucket, r.prefix, name, b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attemptTwice makes c's write, then sends it again as a resend does
// (expecting what the first attempt expected last), then as a resend
// expecting 0: each returns the write's revision.
func attemptTwice(ctx context.Context, t *testing.T, c *keyCreate) uint64 {
	t.Helper()
	// The first attempt as Create sends it: again while it goes
	// unanswered (a 3-node bucket just created answered its first write
	// "no response from stream" once in a clean-clone CI run, 2026-12-07).
	var rev uint64
	err := retryAdmin(ctx, func(ctx context.Context) (err error) {
		rev, err = c.attempt(ctx)
		return err
	})
	if err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	again, err := c.attempt(ctx)
	if err != nil || again != rev {
		t.Fatalf("resend: revision %d, %v; want %d (the first attempt's), no error", again, err, rev)
	}
	fresh := *c
	fresh.last = 0
	if again, err := fresh.attempt(ctx); err != nil || again != rev {
		t.Fatalf("resend expecting 0: revision %d, %v; want %d, no error", again, err, rev)
	}
	return rev
}

// checkLastWrite: name is registered at rev, the bucket's last message
// (the resends stored nothing).
func checkLastWrite(ctx context.Context, t *testing.T, r *Registry, name string, rev uint64) {
	t.Helper()
	spec, got, err := r.Get(ctx, name)
	if err != nil || spec.Name != name || got != rev {
		t.Fatalf("Get(%q) = %q at %d, %v; want it at %d", name, spec.Name, got, err, rev)
	}
	info, err := r.bucket.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != rev {
		t.Fatalf("bucket's last sequence %d, want %d: a resend was stored", info.State.LastSeq, rev)
	}
}

// TestRegistryIdenticalCreates: six instances on a 3-node cluster (two
// per node) create the same spec at once: exactly one gets the name, the
// others ErrStreamExists; so too when they re-create it after its delete.
func TestRegistryIdenticalCreates(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := testContext(t, time.Minute)
	o := testOptions(t, "t")
	regs := openRegistries(ctx, t, c, o, 6)
	for _, name := range []string{"a", "b", "c"} {
		createAtOnce(ctx, t, regs, testSpec(name))
	}
	if err := regs[0].Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	createAtOnce(ctx, t, regs, testSpec("b"))
}

// createAtOnce has every registry create spec at once and wants exactly
// one to win.
func createAtOnce(ctx context.Context, t *testing.T, regs []*Registry, spec sketchd.Stream) uint64 {
	t.Helper()
	revs := make([]uint64, len(regs))
	errs := make([]error, len(regs))
	var wg sync.WaitGroup
	for i, r := range regs {
		wg.Go(func() { revs[i], errs[i] = r.Create(ctx, spec) })
	}
	wg.Wait()
	return oneWinner(ctx, t, regs[0], spec.Name, revs, errs)
}

// oneWinner: exactly one create got the name (nil error), at the
// revision the registry holds; every other got ErrStreamExists.
func oneWinner(ctx context.Context, t *testing.T, r *Registry, name string, revs []uint64, errs []error) uint64 {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%q: creators %d and %d both won (errors %v)", name, winner, i, errs)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrStreamExists):
			t.Fatalf("%q: creator %d: %v", name, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%q: no creator won (errors %v)", name, errs)
	}
	if _, rev, err := r.Get(ctx, name); err != nil || rev != revs[winner] {
		t.Fatalf("%q registered at %d (%v), the winner got %d", name, rev, err, revs[winner])
	}
	return revs[winner]
}

// TestRegistryCreateAnswersLost: three creators of the same spec, each
// on its own connection through a proxy, have read the name unregistered
// and publish at once; one write lands, and every answer is lost (held
// past the attempt's 10 s). Each sends its write again; the answers pass.
// Exactly one creator wins: the resend of the write that landed is known
// by its id (answered as a duplicate on R3, found in the key's last
// message on one server); the others' resends fail on its entry. On one
// server and on a 3-node cluster.
func TestRegistryCreateAnswersLost(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out one admin attempt (10 s)")
	}
	for _, tc := range registryTopologies {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, time.Minute)
			n := startRegistryNodes(t, tc.nodes)
			proxy := newHoldProxy(t, n.ns.Addr().String())
			regs := make([]*Registry, 3)
			for i := range regs {
				regs[i] = n.open(ctx, t, proxy.url(), fmt.Sprintf("creator%d", i))
			}
			write := "PUB $KV." + RegistryBucket("t") + ".pv " // HPUB too
			proxy.holdRequestsOn(write)
			revs := make([]uint64, len(regs))
			errs := make([]error, len(regs))
			var wg sync.WaitGroup
			for i, r := range regs {
				wg.Go(func() { revs[i], errs[i] = r.Create(ctx, testSpec("pv")) })
			}
			waitHeld(t, proxy, len(regs)) // every creator read the name unregistered
			proxy.hold()                  // their answers are lost
			proxy.releaseRequests()
			proxy.holdRequestsOn(write)
			waitHeld(t, proxy, len(regs)) // every creator resends, its attempt timed out
			proxy.resume()
			proxy.releaseRequests()
			wg.Wait()
			direct := n.open(ctx, t, n.ns.ClientURL(), "reader")
			oneWinner(ctx, t, direct, "pv", revs, errs)
		})
	}
}

// waitHeld waits until the proxy holds n requests.
func waitHeld(t *testing.T, p *holdProxy, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.heldRequests() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy holds %d requests after 30 s, want %d", p.heldRequests(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
