package main

// Benchmarks of the cluster mode at the process level (issue 16, "the
// numbers"): CPU per event with 1 and 3 instances, and query latency on a
// cluster instance against single-node references. They build and run the
// binary and a 3-node NATS cluster, so they run only with -bench:
//
//	go test ./cmd/sketchd -run '^$' -bench 'ClusterIngest' -benchtime 50000x
//	go test ./cmd/sketchd -run '^$' -bench 'ClusterQuery' -benchtime 200x
//
// Figures and the model built on them: docs/scale-out.md §6 step 8.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

var benchQueryEvents = flag.Int("cluster.query-events", 50000, "events BenchmarkClusterQuery ingests before it queries")

// benchUnpartitionedConfig is clusterE2EConfig's stream without partitions,
// on its own subject and JetStream stream: the reference whose queries
// read one partition.
const benchUnpartitionedConfig = `
streams:
  - name: pv
    subject: ev.one.*
    jetstream_stream: PV_ONE
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

// benchCluster is a NATS cluster and n sketchd processes in cluster mode on
// clusterE2EConfig's 6-partition stream, each with its partitions claimed.
type benchCluster struct {
	c     *clustertest.Cluster
	procs []*sketchdProc
	js    jetstream.JetStream
}

func startBenchCluster(b *testing.B, n int) *benchCluster {
	b.Helper()
	c := clustertest.Start(b, 3, clustertest.Options{})
	bc := &benchCluster{c: c}
	for i := range n {
		bc.procs = append(bc.procs, startWithConfig(b, b.TempDir(), clusterE2EConfig,
			"--nats-url", c.URLs(), "--cluster-name", "e2e", "--instance-id", fmt.Sprintf("sk%d", i)))
	}
	for _, p := range bc.procs {
		benchWait(b, 60*time.Second, "ready "+p.httpURL, func() bool { return benchGet(p.httpURL+"/readyz", nil) == http.StatusOK })
	}
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	bc.js, _ = jetstream.New(nc)
	bc.waitSpread(b, n)
	return bc
}

// waitSpread waits until the changelog's claims name n owners over the 6
// partitions and stay so for two seconds: the benchmark measures steady
// ownership, not the first rebalance.
func (bc *benchCluster) waitSpread(b *testing.B, n int) {
	b.Helper()
	var stableSince time.Time
	benchWait(b, 90*time.Second, fmt.Sprintf("6 partitions claimed by %d instances", n), func() bool {
		owners := map[string]int{}
		for _, o := range benchOwners(b, bc.js) {
			if o != "" {
				owners[o]++
			}
		}
		spread := len(owners) == n
		for _, k := range owners {
			spread = spread && k*n >= 6-n // balanced: no instance starved
		}
		if !spread {
			stableSince = time.Time{}
			return false
		}
		if stableSince.IsZero() {
			stableSince = time.Now()
		}
		return time.Since(stableSince) > 2*time.Second
	})
}

// benchOwners are the owners of the partitions' last changelog records
// ("" for a partition not claimed yet).
func benchOwners(b *testing.B, js jetstream.JetStream) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := cluster.Changelog{Cluster: "e2e", Stream: "pv", Rev: 1}
	out := make([]string, 6)
	s, err := js.Stream(ctx, cl.Name())
	if err != nil {
		return out // not created yet
	}
	for p := range out {
		m, err := s.GetLastMsgForSubject(ctx, cl.CheckpointSubject(p))
		if err != nil {
			continue
		}
		r, err := cluster.DecodeRecord(m.Data)
		if err != nil {
			b.Fatal(err)
		}
		out[p] = r.Owner
	}
	return out
}

// publish publishes evs to the partitioned stream's subject and waits
// until every process's answer counts all of them.
func (bc *benchCluster) publish(b *testing.B, evs []e2eEvent, also ...*sketchdProc) {
	b.Helper()
	var allowed, done atomic.Int64
	allowed.Store(int64(len(evs)))
	if err := publishPaced(bc.js, evs, 0, &allowed, &done); err != nil {
		b.Fatal(err)
	}
	for _, p := range append(append([]*sketchdProc{}, bc.procs...), also...) {
		benchWait(b, 10*time.Minute, p.httpURL+" counts every event", func() bool {
			return benchTotal(p) == len(evs)
		})
	}
}

// BenchmarkClusterIngest: b.N events into 1 or 3 sketchd processes in
// cluster mode (6 partitions, a 3-node NATS cluster with JetStream R3 in the
// test process), from the first publish until every instance's answers
// count every event (its owned partitions committed through the changelog,
// the others mirrored into its Badger). cpu-ns/event is the sketchd
// processes' user + system CPU (/proc/<pid>/stat) over the events;
// nats+pub-cpu-ns/event is the test process's (the three nats-servers, the
// publisher and the polling), reported apart. idle-cpu-ms/s is the sketchd
// processes' CPU per second over 3 s before the first publish (discovery,
// heartbeats, timers): cpu-ns/event includes it for the ingest's duration.
func BenchmarkClusterIngest(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			bc := startBenchCluster(b, n)
			evs := clusterEventSet(16, b.N)
			idle0, idleAt := bc.cpu(b), time.Now()
			time.Sleep(3 * time.Second)
			cpu0, self0 := bc.cpu(b), selfCPU()
			idle := float64((cpu0 - idle0).Milliseconds()) / time.Since(idleAt).Seconds()
			b.ResetTimer()
			bc.publish(b, evs)
			b.StopTimer()
			cpu, self := bc.cpu(b)-cpu0, selfCPU()-self0
			perEvent := float64(cpu.Nanoseconds()) / float64(b.N)
			b.ReportMetric(perEvent, "cpu-ns/event")
			b.ReportMetric(perEvent/float64(n), "cpu-ns/event/instance")
			b.ReportMetric(float64(self.Nanoseconds())/float64(b.N), "nats+pub-cpu-ns/event")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(idle, "idle-cpu-ms/s")
		})
	}
}

// BenchmarkClusterQuery: after -cluster.query-events events, the same
// queries asked of each of 3 cluster instances (every partition local:
// owned or mirrored, read through the partition merge), of a single node on
// the same 6-partition stream, and of a single node on an unpartitioned
// copy of the events. Each iteration moves `to` by one second, so every
// request misses the answer cache (a repeated query between commits is a
// cache hit, which would measure nothing); the decoded-pane cache stays
// warm after the first request.
func BenchmarkClusterQuery(b *testing.B) {
	bc := startBenchCluster(b, 3)
	ref6 := startWithConfig(b, b.TempDir(), clusterE2EConfig, "--nats-url", bc.c.URLs())
	ref1 := startWithConfig(b, b.TempDir(), benchUnpartitionedConfig, "--nats-url", bc.c.URLs())
	for _, p := range []*sketchdProc{ref6, ref1} {
		benchWait(b, 60*time.Second, "ready "+p.httpURL, func() bool { return benchGet(p.httpURL+"/readyz", nil) == http.StatusOK })
	}
	evs := clusterEventSet(16, *benchQueryEvents)
	b.Logf("seed 16, %d events", len(evs))
	bc.publishUnpartitioned(b, evs)
	bc.publish(b, evs, ref6, ref1)
	targets := []struct {
		name string
		p    *sketchdProc
	}{{"cluster-sk0", bc.procs[0]}, {"cluster-sk1", bc.procs[1]}, {"cluster-sk2", bc.procs[2]},
		{"single-6partitions", ref6}, {"single-unpartitioned", ref1}}
	from, to := clusterBase.Add(-time.Hour).Unix(), clusterBase.Add(2*time.Hour).Unix()
	for _, q := range []struct{ name, path string }{
		{"hll-count", "users?group_by=country"},
		{"hll-count-1m", "users?group_by=country&step=1m"},
		{"cms-top", "urls?group_by=country&top=10"},
		{"tdigest-quantiles", "latency?group_by=country&q=0.5&q=0.9&q=0.99"},
	} {
		for _, tg := range targets {
			b.Run(q.name+"/"+tg.name, func(b *testing.B) {
				base := fmt.Sprintf("%s/v1/streams/pv/aggregates/%s&from=%d", tg.p.httpURL, q.path, from)
				for i := 0; b.Loop(); i++ {
					if st := benchGet(fmt.Sprintf("%s&to=%d", base, to+int64(i)), nil); st != http.StatusOK {
						b.Fatalf("%s: %d", base, st)
					}
				}
			})
		}
	}
}

// publishUnpartitioned publishes evs on the unpartitioned reference's subject.
func (bc *benchCluster) publishUnpartitioned(b *testing.B, evs []e2eEvent) {
	b.Helper()
	const batch = 1000
	for i := 0; i < len(evs); i += batch {
		var fs []jetstream.PubAckFuture
		for _, e := range evs[i:min(i+batch, len(evs))] {
			body, _ := json.Marshal(e)
			f, err := bc.js.PublishAsync("ev.one."+e.User, body)
			if err != nil {
				b.Fatal(err)
			}
			fs = append(fs, f)
		}
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
}

// cpu is the user + system CPU the sketchd processes have used.
func (bc *benchCluster) cpu(b *testing.B) time.Duration {
	b.Helper()
	var sum time.Duration
	for _, p := range bc.procs {
		d, err := procCPU(p.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		sum += d
	}
	return sum
}

// procCPU reads utime + stime of pid from /proc/<pid>/stat (fields 14 and
// 15, in clock ticks).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(ut+st) * time.Second / time.Duration(clockTicks()), nil
}

// clockTicks is sysconf(_SC_CLK_TCK), from getconf (100 when it fails:
// Linux's USER_HZ on every common architecture).
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// selfCPU is the test process's user + system CPU.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchGet GETs u into out (when not nil); it returns the status (0: no answer).
func benchGet(u string, out any) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if json.NewDecoder(resp.Body).Decode(out) != nil {
			return 0
		}
	}
	return resp.StatusCode
}

// benchTotal is the events the instance's answer over every window counts
// (-1 when it does not answer).
func benchTotal(p *sketchdProc) int {
	var a struct {
		Groups []struct {
			Windows []struct {
				Events int `json:"events"`
			} `json:"windows"`
		} `json:"groups"`
	}
	if benchGet(p.httpURL+"/v1/streams/pv/aggregates/users?"+queryRange(), &a) != http.StatusOK {
		return -1
	}
	total := 0
	for _, g := range a.Groups {
		for _, w := range g.Windows {
			total += w.Events
		}
	}
	return total
}

func benchWait(b *testing.B, d time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("not %s after %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
