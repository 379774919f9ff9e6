package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// streamYAML is the four-aggregate stream of the benchmarks (the
// aggregates of the demo stream, every parameter at its default).
const streamYAML = `    time: {field: ts, format: rfc3339}
    group_by: [country, device]
    granularity: 1m
    max_out_of_orderness: 10s
    allowed_lateness: 1m
    idle_timeout: 30s
    late: dead_letter
    aggregates:
      users:   {sketch: hll, field: user_id}
      urls:    {sketch: cms, field: url}
      latency: {sketch: tdigest, field: latency_ms}
      sample:  {sketch: reservoir}
`

// jsStreamJSON is the same stream for POST /v1/streams.
const jsStreamJSON = `{"name": "js", "subject": "bench.js", "jetstream": true,
 "time": {"field": "ts", "format": "rfc3339"}, "group_by": ["country", "device"], "granularity": "1m",
 "max_out_of_orderness": "10s", "allowed_lateness": "1m", "idle_timeout": "30s", "late": "dead_letter",
 "aggregates": {"users": {"sketch": "hll", "field": "user_id"}, "urls": {"sketch": "cms", "field": "url"},
   "latency": {"sketch": "tdigest", "field": "latency_ms"}, "sample": {"sketch": "reservoir"}}}`

// accuracyAggregates are the kinds only pv (the backfilled stream of the
// accuracy check) keeps besides the four: theta and ddsketch at their
// defaults.
const accuracyAggregates = `      visitors: {sketch: theta, field: user_id}
      p99:     {sketch: ddsketch, field: latency_ms}
`

// pvHistory is what pv keeps besides the four: 32 days of 1-minute panes
// (the 30-day backfill must not be too late) and two rollup tiers, hours
// for 90 days and days for 3 years, which answer the 30-day range.
const pvHistory = `    retention: 32d
    rollups:
      - {granularity: 1h, retention: 90d}
      - {granularity: 1d, retention: 1095d}
`

// configYAML is sketchd's config: the streams, and /debug/pprof behind an
// admin token (the runner profiles the query load).
func configYAML(adminToken string) string {
	return "log_level: warn\nflush_interval: 1s\npprof: true\nadmin_token: " + adminToken + "\nstreams:\n" +
		"  - name: core\n    subject: bench.core\n    jetstream: false\n" + streamYAML +
		"  - name: pv\n    subject: bench.pv\n    jetstream: true\n" + streamYAML + accuracyAggregates + pvHistory + heavyYAML
}

func (r *runner) startSketchd(ctx context.Context) error {
	bin := filepath.Join(r.dir, "sketchd")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sketchd")
	build.Dir = r.repo
	build.Stdout, build.Stderr = r.log, r.log
	r.logf("go build -o %s ./cmd/sketchd", bin)
	if err := build.Run(); err != nil {
		return fmt.Errorf("build sketchd: %w", err)
	}
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	natsPort, err := freePort()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(r.dir, "sketchd.yaml")
	token := randomToken()
	r.res.ConfigYAML = configYAML("<random, per run>")
	if err := os.WriteFile(cfgPath, []byte(configYAML(token)), 0o600); err != nil {
		return err
	}
	args := []string{"--config", cfgPath, "--data-dir", filepath.Join(r.dir, "data"),
		"--http-addr", "127.0.0.1:" + strconv.Itoa(httpPort), "--nats-listen", "127.0.0.1:" + strconv.Itoa(natsPort)}
	r.res.SketchdArgs = args
	logf, err := os.Create(filepath.Join(r.dir, "sketchd.log"))
	if err != nil {
		return err
	}
	// sketchd is stopped by stopSketchd (SIGTERM, then SIGKILL of its
	// group), not by a context: it must outlive phases.
	name, argv := bin, args
	if r.c.MemoryBox > 0 {
		g, err := newBox(r.c.MemoryBox)
		if err != nil {
			_ = logf.Close()
			return err
		}
		r.box = &g
		name, argv = g.JoinAndExec(bin, args...)
		r.logf("sketchd runs in the memory cgroup %s (limit %s)", g.Dir, mib(r.c.MemoryBox))
	}
	cmd := exec.Command(name, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logf, logf
	r.logf("+ %s", shellLine("sketchd", args))
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	r.sketchd = cmd
	r.exited = make(chan struct{})
	r.p.track(cmd)
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(r.exited)
	}()
	r.base = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	r.natsURL = "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	r.api = newClient(r.base)
	r.api.token = token
	if err := r.api.waitReady(ctx, time.Minute, r.exited); err != nil {
		return err
	}
	r.nc, err = nats.Connect(r.natsURL, nats.Name("sketchd-bench"))
	return err
}

// stopSketchd stops sketchd gracefully (SIGTERM), and kills its process
// group when it has not exited after 60s. It is idempotent.
func (r *runner) stopSketchd() error {
	if r.sketchd == nil {
		return nil
	}
	cmd := r.sketchd
	r.sketchd = nil
	defer r.p.untrack(cmd)
	select {
	case <-r.exited:
		return errors.New("sketchd had exited before the end (see its log)")
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
			return fmt.Errorf("sketchd: %s", cmd.ProcessState)
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
		return errors.New("sketchd did not stop within 60s of SIGTERM; killed")
	}
}
