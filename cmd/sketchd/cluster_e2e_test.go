package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

var clusterEvents = flag.Int("cluster.events", 20000, "events TestClusterProcesses publishes (the issue's long form: 200000)")

// clusterE2EConfig: one stream of 6 partitions, hashed on the user token.
const clusterE2EConfig = `
streams:
  - name: pv
    subject: ev.cl.*
    jetstream_stream: PV_CL
    partitions: 6
    partition_by: [1]
    time: {field: ts, format: unix_ms}
    group_by: [country]
    max_out_of_orderness: 5s
    allowed_lateness: 30s
    idle_timeout: 0s
    max_future: 876000h
    retention: 876000h
    aggregates:
      users: {sketch: hll, field: user}
      urls: {sketch: cms, field: url}
      latency: {sketch: tdigest, field: ms}
      sample: {sketch: reservoir, size: 8}
`

// TestClusterProcesses is the proof at the process level: a
// 3-node NATS cluster (JetStream R3) of child processes, three sketchd
// processes in cluster mode on it, and a single-node sketchd as the
// reference, reading the same JetStream stream with its own consumers.
// Seeded events are published at a steady rate; one cluster process is
// killed with SIGKILL a third of the way in; the survivors claim its
// partitions (the failover time is logged: from the kill until the last
// of its partitions is committed by a new owner, read from the
// changelog's checkpoint records); the killed one is restarted; then one
// NATS node (a child nats-server process) is killed with SIGKILL two
// thirds of the way in while events still arrive, every instance keeps
// answering, and the node is restarted once every instance has every
// event. Then every instance answers every query as
// the reference does: exact counts, HLL, count-min and reservoir answers
// equal, t-digest quantiles within their rank error of the truth, every
// partition covered. Long form: -cluster.events=200000.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	n, seed := *clusterEvents, uint64(16)
	t.Logf("seed %d, %d events", seed, n)
	c := clustertest.Start(t, 3, clustertest.Options{Processes: true})
	start := func(i int, extra ...string) *sketchdProc {
		dir := t.TempDir()
		args := append([]string{"--nats-url", c.URLs(), "--flush-interval", "250ms"}, extra...)
		return startWithConfig(t, dir, clusterE2EConfig, args...)
	}
	clusterFlags := []string{"--cluster-name", "e2e", "--failover-timeout", "1s", "--discovery-interval", "250ms"}
	procs := make([]*sketchdProc, 3)
	for i := range procs {
		procs[i] = start(i, append(clusterFlags, "--instance-id", fmt.Sprintf("sk%d", i))...)
	}
	for _, p := range procs {
		waitReady(t, p, 60*time.Second)
	}
	ref := start(3)
	waitReady(t, ref, 60*time.Second)

	evs := clusterEventSet(seed, n)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var published, allowed atomic.Int64
	allowed.Store(int64(n / 3))
	pubDone := make(chan error, 1)
	go func() { pubDone <- publishPaced(js, evs, 8*time.Second, &allowed, &published) }()
	waitCond(t, 60*time.Second, "a third published", func() bool { return published.Load() >= int64(n/3) })
	survivor := procs[0]
	waitCond(t, 60*time.Second, "every partition committed once", func() bool {
		pos := positions(t, survivor)
		return len(pos) == 6 && !slices.Contains(pos, 0)
	})
	waitCond(t, 60*time.Second, "sketchd 2 owning a partition", func() bool {
		return slices.ContainsFunc(lastRecords(t, js), func(r cluster.Record) bool { return r.Owner == "sk2" })
	})
	victim := procs[2]
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	allowed.Store(int64(2 * n / 3))
	// The victim's partitions: those whose last record (read after the
	// kill: nothing more can come from it) it wrote.
	lost := map[int]cluster.Record{}
	for p, r := range lastRecords(t, js) {
		if r.Owner == "sk2" {
			lost[p] = r
		}
	}
	if len(lost) == 0 {
		t.Fatal("sketchd 2 owned no partition when it was killed")
	}
	t.Logf("killed sketchd 2 (SIGKILL) at %d of %d published; its partitions %v", published.Load(), n, slices.Sorted(maps.Keys(lost)))
	var failover time.Duration
	waitCond(t, 60*time.Second, "the victim's partitions committing again", func() bool {
		now := lastRecords(t, js)
		for p, was := range lost {
			r := now[p]
			if r.Owner == was.Owner || r.Checkpoint.Position <= was.Checkpoint.Position {
				return false
			}
			failover = max(failover, time.Unix(0, r.CommittedAt).Sub(killed))
		}
		return true
	})
	t.Logf("failover: the victim's partitions committed again by their new owners %s after the kill (last of them; failover_timeout 1s, discovery_interval 250ms, flush_interval 250ms)",
		failover.Round(10*time.Millisecond))
	if failover > 10*time.Second { // far past failover_timeout: show why
		for i, p := range procs[:2] {
			dumpLog(t, i, p)
		}
	}
	procs[2] = victim.restart(t)
	waitReady(t, procs[2], 60*time.Second)

	// A NATS node is killed (SIGKILL) during ingest: R3 keeps quorum,
	// clients reconnect to the other nodes, and every instance keeps
	// answering; the node is restarted once every event is in.
	const down = 1
	t.Logf("killing NATS node %s (SIGKILL) at %d of %d published", c.Name(down), published.Load(), n)
	natsKilled := time.Now()
	c.Kill(t, down)
	allowed.Store(int64(n))
	all := append([]*sketchdProc{ref}, procs...)
	queries, refused, pubAt, currentAt := natsDownPhase(t, all, n, pubDone)
	since := make([]string, len(currentAt))
	for i, at := range currentAt {
		since[i] = at.Sub(natsKilled).Round(10 * time.Millisecond).String()
	}
	t.Logf("NATS node %s down: %d queries to the 4 instances, %d not answered 200; the last third published (every ack in) %s after the kill; each instance (reference, sketchd 0-2) counts every event %v after the kill",
		c.Name(down), queries, refused, pubAt.Sub(natsKilled).Round(10*time.Millisecond), since)
	if slices.ContainsFunc(currentAt, func(at time.Time) bool { return at.Sub(pubAt) > 10*time.Second }) {
		for i, p := range procs {
			dumpLog(t, i, p)
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d queries not answered while NATS node %s was down", refused, queries, c.Name(down))
	}
	rejoin := time.Now()
	if err := c.Restart(t, down); err != nil {
		// Seen under load: a consumer an owner reset while the node was
		// down stayed "consumer node missing" on it for over a minute
		// (nats-server's health check); the answers below do not read it.
		t.Logf("NATS node %s: %v", c.Name(down), err)
	}
	t.Logf("NATS node %s restarted and back in the cluster after %s",
		c.Name(down), time.Since(rejoin).Round(10*time.Millisecond))
	rng := fmt.Sprintf("from=%d&to=%d", clusterBase.Add(-time.Hour).Unix(), clusterBase.Add(2*time.Hour).Unix())
	for _, q := range []string{
		"users?group_by=country&step=1m&" + rng,
		"users?" + rng,
		"urls?group_by=country&item=/p/1&item=/p/7&item=/p/49&" + rng,
		"sample?group_by=country&" + rng,
		"sample?step=1m&" + rng,
	} {
		want := answerRows(t, ref, q)
		for i, p := range procs {
			if got := answerRows(t, p, q); !reflect.DeepEqual(want, got) {
				t.Errorf("instance %d %s:\nreference %v\ncluster   %v", i, q, want, got)
			}
		}
	}
	checkClusterOwners(t, procs, 6)
	for i, p := range procs { // the mirror's metrics are wired
		resp, err := http.Get(p.httpURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `sketchd_mirror_restored{stream="pv"} 1`) {
			t.Errorf("instance %d: no sketchd_mirror_restored 1 for pv in /metrics", i)
		}
	}
	for i, p := range all {
		checkClusterQuantiles(t, p, evs, rng)
		var a map[string]any
		fetchJSON(t, p.httpURL+"/v1/streams/pv/aggregates/users?"+rng, &a)
		b, _ := json.Marshal(a["partitions"])
		var cov struct {
			Count   int   `json:"count"`
			Covered []int `json:"covered"`
		}
		_ = json.Unmarshal(b, &cov)
		if cov.Count != 6 || len(cov.Covered) != 6 {
			t.Errorf("instance %d covers %s, want all 6 partitions", i, b)
		}
	}
}

// natsDownPhase queries every instance until each counts all n events
// and the publisher is done: it returns the queries asked, those not
// answered 200, when the publisher was seen done, and when each instance
// first counted every event.
func natsDownPhase(t *testing.T, all []*sketchdProc, n int, pubDone <-chan error) (queries, refused int, pubAt time.Time, currentAt []time.Time) {
	t.Helper()
	published := false
	currentAt = make([]time.Time, len(all))
	totals := make([]int, len(all))
	defer func() {
		if !t.Failed() {
			return
		}
		// Not every instance caught up: say which, and why.
		t.Logf("publisher done: %v; events counted by the reference and sketchd 0-2: %v (want %d)", published, totals, n)
		for i, p := range all[1:] {
			dumpLog(t, i, p)
			dumpMirror(t, i, p)
		}
	}()
	waitCond(t, 120*time.Second, "every instance has every event", func() bool {
		if !published {
			select {
			case err := <-pubDone:
				if err != nil {
					t.Fatal(err)
				}
				published, pubAt = true, time.Now()
			default:
			}
		}
		done := published
		for i, p := range all {
			queries++
			rows, st := answerRowsStatus(t, p, "users?"+queryRange())
			if st != http.StatusOK {
				refused++
				done = false
				continue
			}
			total := 0
			for _, r := range rows {
				total += int(r[2].(float64))
			}
			totals[i] = total
			if total == n && currentAt[i].IsZero() {
				currentAt[i] = time.Now()
			}
			done = done && total == n
		}
		return done
	})
	return queries, refused, pubAt, currentAt
}

// queryRange covers every event's time.
func queryRange() string {
	return fmt.Sprintf("from=%d&to=%d", clusterBase.Add(-time.Hour).Unix(), clusterBase.Add(2*time.Hour).Unix())
}

// clusterBase is 10:00 UTC yesterday (inside the default retention).
var clusterBase = time.Now().UTC().Truncate(24 * time.Hour).Add(-14 * time.Hour)

func clusterEventSet(seed uint64, n int) []e2eEvent {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]e2eEvent, n)
	for i := range out {
		out[i] = e2eEvent{
			TS:      clusterBase.Add(time.Duration(i) * 10 * time.Millisecond).UnixMilli(),
			Country: []string{"DE", "FR", "US", "JP"}[rng.IntN(4)],
			User:    fmt.Sprintf("u%d", rng.IntN(5000)),
			URL:     fmt.Sprintf("/p/%d", rng.IntN(50)),
			MS:      rng.ExpFloat64() * 100,
		}
	}
	return out
}

// publishPaced publishes evs over about d (plus the time it waits for
// allowed to reach the next batch), in batches, each event with
// its index as Nats-Msg-Id, so that a publish retried after a lost ack (a
// NATS node going down) is stored once; it counts what was acknowledged.
func publishPaced(js jetstream.JetStream, evs []e2eEvent, d time.Duration, allowed, done *atomic.Int64) error {
	const batch = 500
	began := time.Now()
	for i := 0; i < len(evs); i += batch {
		end := min(i+batch, len(evs))
		for int64(i) >= allowed.Load() { // the test's phases
			time.Sleep(10 * time.Millisecond)
			began = began.Add(10 * time.Millisecond)
		}
		todo := make([]int, 0, batch)
		for j := i; j < end; j++ {
			todo = append(todo, j)
		}
		for try := 0; len(todo) > 0; try++ {
			if try == 20 {
				return fmt.Errorf("%d publishes not acknowledged after 20 tries", len(todo))
			}
			futures := make([]jetstream.PubAckFuture, len(todo))
			for k, j := range todo {
				b, _ := json.Marshal(evs[j])
				f, err := js.PublishAsync("ev.cl."+evs[j].User, b, jetstream.WithMsgID(fmt.Sprint(j)))
				if err != nil {
					time.Sleep(100 * time.Millisecond)
				}
				futures[k] = f
			}
			// One deadline for the whole batch: publishes lost with a
			// NATS node are never answered, and waiting 10 s for each
			// of them in turn stalled the publisher for minutes.
			var again []int
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			for k, f := range futures {
				if f == nil || !acked(ctx, f) {
					again = append(again, todo[k])
				}
			}
			cancel()
			todo = again
			if len(todo) > 0 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		done.Store(int64(end))
		if due := began.Add(time.Duration(float64(d) * float64(end) / float64(len(evs)))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
	}
	return nil
}

// acked waits for f's answer until ctx is done: whether it is an ack.
func acked(ctx context.Context, f jetstream.PubAckFuture) bool {
	select {
	case <-f.Ok():
		return true
	case <-f.Err():
		return false
	case <-ctx.Done():
		select {
		case <-f.Ok():
			return true
		default:
			return false
		}
	}
}

// fetchJSON GETs u into out; it returns the status (0: no answer).
func fetchJSON(t *testing.T, u string, out any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, b)
		}
	}
	return resp.StatusCode
}

func waitReady(t *testing.T, p *sketchdProc, d time.Duration) {
	t.Helper()
	waitCond(t, d, "ready "+p.httpURL, func() bool { return fetchJSON(t, p.httpURL+"/readyz", nil) == http.StatusOK })
}

func waitCond(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// positions are the committed positions of the stream's partitions as
// the instance's answers report them.
func positions(t *testing.T, p *sketchdProc) []int {
	t.Helper()
	var a struct {
		Partitions struct {
			Detail []struct {
				PositionSeq int `json:"position_seq"`
			} `json:"detail"`
		} `json:"partitions"`
	}
	rng := fmt.Sprintf("from=%d&to=%d", clusterBase.Add(-time.Hour).Unix(), clusterBase.Add(2*time.Hour).Unix())
	if fetchJSON(t, p.httpURL+"/v1/streams/pv/aggregates/users?"+rng, &a) != http.StatusOK {
		return nil
	}
	out := make([]int, len(a.Partitions.Detail))
	for i, d := range a.Partitions.Detail {
		out[i] = d.PositionSeq
	}
	return out
}

// totalEvents is the events the instance's answer over every window counts.
func totalEvents(t *testing.T, p *sketchdProc) int {
	t.Helper()
	rows := answerRows(t, p, fmt.Sprintf("users?from=%d&to=%d", clusterBase.Add(-time.Hour).Unix(), clusterBase.Add(2*time.Hour).Unix()))
	total := 0
	for _, r := range rows {
		total += int(r[2].(float64))
	}
	return total
}

// answerRows keeps what must be equal between instances: per group and
// window, the events and the kind's answer.
func answerRows(t *testing.T, p *sketchdProc, q string) [][]any {
	t.Helper()
	rows, _ := answerRowsStatus(t, p, q)
	return rows
}

// answerRowsStatus is answerRows with the answer's status.
func answerRowsStatus(t *testing.T, p *sketchdProc, q string) ([][]any, int) {
	t.Helper()
	var a map[string]any
	if st := fetchJSON(t, p.httpURL+"/v1/streams/pv/aggregates/"+q, &a); st != http.StatusOK {
		return nil, st
	}
	var out [][]any
	groups, _ := a["groups"].([]any)
	for _, g := range groups {
		g := g.(map[string]any)
		for _, w := range g["windows"].([]any) {
			w := w.(map[string]any)
			row := []any{g["key"], w["start"], w["events"]}
			for _, k := range []string{"distinct", "total", "items", "sample", "population"} {
				if v, ok := w[k]; ok {
					row = append(row, k, v)
				}
			}
			out = append(out, row)
		}
	}
	return out, http.StatusOK
}

// checkClusterQuantiles: each country's t-digest quantiles are within 3
// rank errors (plus one value) of the exact ones.
func checkClusterQuantiles(t *testing.T, p *sketchdProc, evs []e2eEvent, rng string) {
	t.Helper()
	by := map[string][]float64{}
	for _, e := range evs {
		by[e.Country] = append(by[e.Country], e.MS)
	}
	var a map[string]any
	if fetchJSON(t, p.httpURL+"/v1/streams/pv/aggregates/latency?group_by=country&q=0.5&q=0.9&q=0.99&"+rng, &a) != http.StatusOK {
		t.Fatalf("%s: no latency answer", p.httpURL)
	}
	for _, g := range a["groups"].([]any) {
		g := g.(map[string]any)
		vals := slices.Clone(by[g["key"].(map[string]any)["country"].(string)])
		sort.Float64s(vals)
		w := g["windows"].([]any)[0].(map[string]any)
		for _, q := range w["quantiles"].([]any) {
			q := q.(map[string]any)
			v, pq, re := q["value"].(float64), q["q"].(float64), q["rank_error"].(float64)
			rank := float64(sort.SearchFloat64s(vals, v)) / float64(len(vals))
			if d := math.Abs(rank - pq); d > 3*re+1/float64(len(vals)) {
				t.Errorf("%s %v q=%v: value %v has rank %v, rank error %v", p.httpURL, g["key"], pq, v, rank, re)
			}
		}
	}
}

// lastRecords reads every partition's last checkpoint record from the
// stream's changelog.
func lastRecords(t *testing.T, js jetstream.JetStream) []cluster.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := cluster.Changelog{Cluster: "e2e", Stream: "pv", Rev: 1}
	s, err := js.Stream(ctx, cl.Name())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]cluster.Record, 6)
	for p := range out {
		m, err := s.GetLastMsgForSubject(ctx, cl.CheckpointSubject(p))
		if err != nil {
			continue // none yet
		}
		if out[p], err = cluster.DecodeRecord(m.Data); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// dumpLog logs what the process logged since it started (as far as its
// buffer kept), but its info lines other than ownership changes.
// dumpMirror logs instance i's changelog mirror metrics (applied sequence
// and pending per partition, records applied, restored): whether a
// lagging instance's mirror stalled or is still applying.
func dumpMirror(t *testing.T, i int, p *sketchdProc) {
	t.Helper()
	resp, err := http.Get(p.httpURL + "/metrics")
	if err != nil {
		t.Logf("sketchd %d: /metrics: %v", i, err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, "sketchd_mirror_") {
			t.Logf("sketchd %d: %s", i, l)
		}
	}
}

func dumpLog(t *testing.T, i int, p *sketchdProc) {
	t.Helper()
	for {
		select {
		case l := <-p.logLines:
			if !strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, "partition") {
				t.Logf("sketchd %d: %s", i, l)
			}
		default:
			return
		}
	}
}
