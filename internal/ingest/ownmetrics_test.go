package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/promtest"
)

// TestClusterOwnershipMetrics: the ownership metrics of a cluster stream
// move as the events happen, read through each instance's real registry.
// Instance A alone claims both partitions (2 claims ok, epoch 1 each); an
// intruder claims partition 0 in the changelog, so A's next commit is
// refused: exactly one fenced commit and one fenced release, then A claims
// it back at the intruder's epoch + 1. Instance B joins: A releases one
// partition (rebalance) and B claims it; B crashes: A, the survivor,
// claims it (one more claim ok). Every claim that changed an owner is
// counted by the mirrors (A's sees the intruder's and B's claims). B's
// stop releases its partition (shutdown); the stream's delete releases
// A's (removed) and unregisters the stream's metrics.
func TestClusterOwnershipMetrics(t *testing.T) {
	const seed, n = 5, 1200
	t.Logf("seed %d, %d events", seed, n)
	c := clustertest.Start(t, 3, clustertest.Options{})
	a := newClusterNode(t, c, 0)
	spec := partSpec("pv", "om", `,"jetstream_stream":"PV_OM","partitions":2,"partition_by":[1]`)
	if r := a.fixture().do(t, http.MethodPost, "/v1/streams", spec); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var cs *clusterStream
	waitFor(t, 30*time.Second, "both partitions owned", func() (bool, string) {
		cs = a.m.clusterStreamOf("pv")
		return cs != nil && cs.owns(0) && cs.owns(1), ""
	})
	wantMetrics(t, a.prom, "A owns both", map[string]float64{
		`sketchd_partition_owned{partition="0"}`: 1, `sketchd_partition_owned{partition="1"}`: 1,
		`sketchd_partition_owner_epoch{partition="0"}`: 1, `sketchd_partition_owner_epoch{partition="1"}`: 1,
		`sketchd_partition_claims_total{result="ok"}`: 2, `sketchd_partition_claims_total{result="failed"}`: 0,
		`sketchd_partition_claims_total{result="timeout"}`: 0, `sketchd_commits_fenced_total`: 0,
		`sketchd_partition_releases_total{reason="fenced"}`: 0, `sketchd_partition_releases_total{reason="rebalance"}`: 0,
	})
	changes0 := seriesValue(t, a.prom, `sketchd_partition_owner_changes_total`)
	if changes0 > 2 {
		t.Errorf("owner changes %v after two first claims, want at most 2", changes0)
	}

	pub := c.Connect(t, 1)
	js, _ := jetstream.New(pub)
	evs := genEvents(seed, n)
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := js.PublishAsync("ev.om."+evs[i].User, evs[i].json()); err != nil {
				t.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
	}
	publish(0, n/3)
	waitFor(t, 30*time.Second, "the first third stored", func() (bool, string) {
		got, s := storedEvents(t, a.m, a.db, "pv")
		return got == n/3, s
	})
	opts, _ := testClusterOptions().Normalize()
	_, mjs := cs.m.conns()
	intruder := cluster.NewWriter(pub, mjs, cs.cl, 0, "intruder", cs.info.Spec, opts)
	rec, err := intruder.Claim(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	publish(n/3, 2*n/3)
	waitFor(t, 60*time.Second, "two thirds stored, partition 0 owned again", func() (bool, string) {
		got, s := storedEvents(t, a.m, a.db, "pv")
		return got == 2*n/3 && cs.owns(0), s
	})
	wantMetrics(t, a.prom, "after the fence", map[string]float64{
		`sketchd_commits_fenced_total`: 1, `sketchd_partition_releases_total{reason="fenced"}`: 1,
		`sketchd_partition_claims_total{result="ok"}`: 3, `sketchd_partition_owned{partition="0"}`: 1,
		`sketchd_partition_owner_epoch{partition="0"}`: float64(rec.Epoch + 1),
		`sketchd_partition_owner_changes_total`:        changes0 + 2, // to the intruder, and back
	})

	b := newClusterNode(t, c, 1)
	var moved int
	waitFor(t, 60*time.Second, "B owning one partition", func() (bool, string) {
		csb := b.m.clusterStreamOf("pv")
		if csb == nil {
			return false, "no stream on B"
		}
		for p := range 2 {
			if csb.owns(p) && !cs.owns(p) {
				moved = p
				return true, ""
			}
		}
		return false, fmt.Sprintf("A owns 0 %v 1 %v", cs.owns(0), cs.owns(1))
	})
	mp := strconv.Itoa(moved)
	wantMetrics(t, a.prom, "after B joined", map[string]float64{
		`sketchd_partition_releases_total{reason="rebalance"}`: 1, `sketchd_partition_owned{partition="` + mp + `"}`: 0,
		`sketchd_partition_owner_epoch{partition="` + mp + `"}`: 0,
	})
	wantMetrics(t, b.prom, "B's claim", map[string]float64{
		`sketchd_partition_claims_total{result="ok"}`: 1, `sketchd_partition_owned{partition="` + mp + `"}`: 1,
	})
	waitFor(t, 10*time.Second, "A's mirror seeing B's claim", func() (bool, string) {
		v := seriesValue(t, a.prom, `sketchd_partition_owner_changes_total`)
		return v == changes0+3, fmt.Sprint(v)
	})

	csb := b.m.clusterStreamOf("pv")
	b.crash(t) // a stop whose context is done: counted, without a final commit
	if got := csb.counts.releases[releaseShutdown].Load(); got != 1 {
		t.Errorf("B's releases at shutdown %d, want 1", got)
	}
	waitFor(t, 60*time.Second, "A owning both again", func() (bool, string) {
		return cs.owns(0) && cs.owns(1), ""
	})
	publish(2*n/3, n)
	waitFor(t, 60*time.Second, "every event stored", func() (bool, string) {
		got, s := storedEvents(t, a.m, a.db, "pv")
		return got == n, s
	})
	wantMetrics(t, a.prom, "after B's crash", map[string]float64{
		`sketchd_partition_claims_total{result="ok"}`: 4, `sketchd_partition_owned{partition="` + mp + `"}`: 1,
		`sketchd_commits_fenced_total`: 1, `sketchd_partition_owner_changes_total`: changes0 + 4,
	})

	if r := a.fixture().do(t, http.MethodDelete, "/v1/streams/pv", ""); r.status/100 != 2 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if got := cs.counts.releases[releaseRemoved].Load(); got != 2 {
		t.Errorf("A's releases at the delete %d, want 2", got)
	}
	if n, err := a.prom.Gather(); err != nil || len(n) != 0 {
		t.Errorf("after the delete: %d metric families registered (%v), want none", len(n), err)
	}
}

// seriesValue is the value of one series of reg, named as in the
// exposition format without the stream label ("name{label="v"}").
func seriesValue(tb testing.TB, reg *prometheus.Registry, series string) float64 {
	tb.Helper()
	v, ok := gatherSeries(tb, reg)[series]
	if !ok {
		tb.Fatalf("no series %s", series)
	}
	return v
}

// wantMetrics checks the series of want against reg.
func wantMetrics(tb testing.TB, reg *prometheus.Registry, when string, want map[string]float64) {
	tb.Helper()
	got := gatherSeries(tb, reg)
	for s, w := range want {
		if g, ok := got[s]; !ok || g != w {
			tb.Errorf("%s: %s = %v (present %v), want %v", when, s, g, ok, w)
		}
	}
}

// gatherSeries gathers reg's series of stream pv, keyed as seriesValue
// names them: promtest.Series without the stream label.
func gatherSeries(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	for series, v := range promtest.Series(tb, reg) {
		name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
		var kept []string
		for _, l := range strings.Split(labels, ",") {
			switch {
			case l == "":
			case l == `stream="pv"`:
			case strings.HasPrefix(l, "stream="):
				tb.Errorf("%s of %s", name, l)
			default:
				kept = append(kept, l)
			}
		}
		if len(kept) > 0 {
			name += "{" + strings.Join(kept, ",") + "}"
		}
		out[name] = v
	}
	return out
}

// TestCommitFailureLevel: a commit the changelog fenced (a hand-off) logs
// at Info, any other failure at Error.
func TestCommitFailureLevel(t *testing.T) {
	fenced := fmt.Errorf("commit: %w", &cluster.FencedError{Partition: 3, Owner: "b", Epoch: 7})
	if got := commitFailureLevel(fenced); got != slog.LevelInfo {
		t.Errorf("fenced commit: %v, want INFO", got)
	}
	if got := commitFailureLevel(fmt.Errorf("disk full")); got != slog.LevelError {
		t.Errorf("other failure: %v, want ERROR", got)
	}
}
