package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/cgroup"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/loadtest/publish"
	"github.com/sketchd/sketchd/loadtest/querymix"
)

// Results is everything a run measured; the report renders it.
type Results struct {
	Config  Config        `json:"config"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed"`
	Machine Machine       `json:"machine"`
	Tools   []ToolInfo    `json:"tools"`

	MsgSize     int     `json:"msg_size"`
	CeilingCore Ceiling `json:"ceiling_core"`
	CeilingJS   Ceiling `json:"ceiling_js"`
	IngestCore  Ingest  `json:"ingest_core"`
	IngestJS    Ingest  `json:"ingest_js"`
	Backfill    Ingest  `json:"backfill"`
	// LongBackfill is the sparse history of pv before the accuracy
	// backfill (LongSpan of event time), which the rollup tiers serve.
	LongBackfill Ingest `json:"long_backfill"`
	// Tiers is pv's rollup status (GET /v1/streams/pv) when the query
	// load started.
	Tiers []TierStatus `json:"tiers"`

	Accounting    Accounting `json:"accounting"`
	Accuracy      Accuracy   `json:"accuracy"`
	AccuracyFrom  time.Time  `json:"accuracy_from"`
	AccuracyTo    time.Time  `json:"accuracy_to"`
	AccuracyPaths []string   `json:"accuracy_paths"`
	PaneKeys      int        `json:"pane_keys"` // (pane, key) pairs of the backfill

	Live    Ingest        `json:"live"` // ingest during the query load
	Service []ServiceTime `json:"service"`
	LowRate *QueryLoad    `json:"low_rate"` // vegeta at half the estimated capacity
	Vegeta  *QueryLoad    `json:"vegeta"`
	K6      *QueryLoad    `json:"k6"`
	// Dashboard is the dashboard scenario (k6, DashboardVUs users
	// refreshing querymix.DashboardOf every 5 s).
	Dashboard *QueryLoad `json:"dashboard"`
	// Profiles are sketchd's pprof profiles of the query load.
	Profiles []Profile `json:"profiles"`
	// Phases is sketchd's peak RSS per phase of the run.
	Phases []PhaseMemory `json:"phases"`
	// Heavy is the heavy-query phase: a query over 300k keys that must be
	// refused, alone and eight at once.
	Heavy *HeavyQuery `json:"heavy"`

	// Drain is how long sketchd kept answering /v1 requests after the
	// load tools had exited (requests their clients had given up on), and
	// DrainRequests how many it answered meanwhile.
	Drain         time.Duration `json:"drain"`
	DrainRequests int           `json:"drain_requests"`
	// SlowErrors are the error responses of sketchd's log (query timeout
	// 10s, the default).
	SlowErrors SlowErrors `json:"slow_errors"`

	Memory []MemSample `json:"memory"`
	// Box is sketchd's memory cgroup (--memory-box); nil without.
	Box *MemoryBox `json:"box,omitempty"`

	SketchdArgs []string      `json:"sketchd_args"`
	ConfigYAML  string        `json:"config_yaml"`
	Shutdown    time.Duration `json:"shutdown"`
	Notes       []string      `json:"notes"`
}

// Machine describes where the run ran.
type Machine struct {
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirty"`
	CPU       string `json:"cpu"`
	NProc     int    `json:"nproc"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// ToolInfo is a tool used, its version and how long installing it took.
type ToolInfo struct {
	Name, Version string
	Install       time.Duration
}

// Ingest is one ingest measurement.
type Ingest struct {
	Stream    string        `json:"stream"`
	Events    int           `json:"events"`  // published
	Applied   int           `json:"applied"` // applied to sketches
	Processed int           `json:"processed"`
	Dropped   int           `json:"dropped"` // core slow-consumer drops
	Elapsed   time.Duration `json:"elapsed"` // first publish (or stream creation) to the last event processed
	Rate      float64       `json:"rate"`    // processed per second
	PubRate   float64       `json:"pub_rate"`
	Commands  []string      `json:"commands"`
}

// Accounting compares the generator's counts with sketchd's counters for
// the backfill.
type Accounting struct {
	Published, Invalid, Late, Valid     uint64
	SkInvalid, SkTooLate, SkApplied     uint64
	SkLateApplied, SkFuture, TruthEvent uint64
}

// MemSample is the memory and disk of sketchd at one moment.
type MemSample struct {
	Phase     string `json:"phase"`
	RSS       int64  `json:"rss"`
	HWM       int64  `json:"hwm"`
	OpenPanes int    `json:"open_panes"`
	Events    int    `json:"events"` // processed by sketchd so far, every stream
	// ActiveKeys are the (stream, key) pairs with a pane in the last 26h.
	ActiveKeys int   `json:"active_keys"`
	Badger     int64 `json:"badger"` // bytes on disk
	NATS       int64 `json:"nats"`   // embedded JetStream files on disk
}

type runner struct {
	c       Config
	p       *procs
	log     io.Writer
	logFile *os.File
	dir     string
	repo    string
	res     *Results

	sketchd *exec.Cmd
	exited  chan struct{}
	api     *client
	base    string
	natsURL string
	nc      *nats.Conn
	tools   map[string]*tool
	mem     *memWatch
	box     *cgroup.Group // sketchd's memory cgroup (--memory-box); nil without
}

// phase starts a phase of the run: logged, and sketchd's RSS and store
// writes attributed to it.
func (r *runner) phase(name string) {
	r.logf("%s", name)
	if r.mem != nil {
		r.mem.phase(name, r.storeWrites())
	}
}

// storeWrites reads the store's write counters from sketchd's /metrics
// (not ok when it does not answer within 5 s).
func (r *runner) storeWrites() storeWrites {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := r.api.metrics(ctx)
	if err != nil {
		return storeWrites{}
	}
	return storeWrites{
		commit:     int64(m.Sum("sketchd_store_commit_bytes_total")),
		compaction: int64(m.Sum("sketchd_store_compaction_written_bytes_total")),
		ok:         true,
	}
}

func newRunner(ctx context.Context, c Config, stdout, stderr io.Writer) (*runner, error) {
	dir, err := os.MkdirTemp("", "sketchd-bench-")
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, "bench.log"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	log := io.MultiWriter(stderr, lf)
	r := &runner{c: c, log: log, logFile: lf, dir: dir, p: newProcs(log), res: &Results{Config: c, Started: time.Now().UTC()}}
	fmt.Fprintf(log, "bench: working in %s\n", dir)
	root, err := r.p.run(ctx, time.Minute, "go", "list", "-m", "-f", "{{.Dir}}")
	if err != nil {
		r.close()
		return nil, fmt.Errorf("find the module root (run from the sketchd repository): %w", err)
	}
	r.repo = strings.TrimSpace(string(root))
	_ = stdout
	return r, nil
}

// close stops everything the runner started and removes its temp dir
// (unless Keep). It runs on success, error and signal alike.
func (r *runner) close() {
	if r.nc != nil {
		r.nc.Close()
	}
	r.stopSketchd()
	r.p.KillAll()
	if r.box != nil {
		if err := r.box.Remove(); err != nil {
			fmt.Fprintf(r.log, "bench: the memory cgroup %s is left: %v\n", r.box.Dir, err)
		}
	}
	if r.c.Keep {
		fmt.Fprintf(r.log, "bench: kept %s\n", r.dir)
	}
	_ = r.logFile.Close()
	if !r.c.Keep {
		_ = os.RemoveAll(r.dir)
	}
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.log, "bench %5.1fs: "+format+"\n", append([]any{time.Since(r.res.Started).Seconds()}, a...)...)
}

func (r *runner) runAll(ctx context.Context) (*Results, error) {
	res := r.res
	start := time.Now()
	r.machine(ctx)
	if err := r.setupTools(ctx); err != nil {
		return nil, err
	}
	if err := r.startSketchd(ctx); err != nil {
		return nil, err
	}
	res.MsgSize = eventSize(r.c.Seed)
	r.logf("events average %d bytes", res.MsgSize)

	nb := natsBench{p: r.p, nats: r.tools["nats"].path, url: r.natsURL, dir: r.dir, msgs: r.c.CeilingN, size: res.MsgSize, timeout: 3 * time.Minute}
	var err error
	r.mem = newMemWatch(r.sketchd.Process.Pid)
	r.phase("1. transport ceiling, core")
	if res.CeilingCore, err = nb.core(ctx); err != nil {
		return nil, fmt.Errorf("ceiling core: %w", err)
	}
	r.logf("   core subscriber: %.0f msg/s", res.CeilingCore.Rate)
	r.phase("1. transport ceiling, JetStream")
	if res.CeilingJS, err = nb.jetStream(ctx); err != nil {
		return nil, fmt.Errorf("ceiling JetStream: %w", err)
	}
	r.logf("   JetStream consumer: %.0f msg/s", res.CeilingJS.Rate)

	r.phase("2. sketchd ingest, core")
	if res.IngestCore, err = r.ingestCore(ctx); err != nil {
		return nil, fmt.Errorf("ingest core: %w", err)
	}
	r.logf("   %.0f events/s (%d dropped)", res.IngestCore.Rate, res.IngestCore.Dropped)
	r.phase("2. sketchd ingest, JetStream")
	if res.IngestJS, err = r.ingestJS(ctx); err != nil {
		return nil, fmt.Errorf("ingest JetStream: %w", err)
	}
	r.logf("   %.0f events/s", res.IngestJS.Rate)

	r.phase(fmt.Sprintf("4. backfill %d events over %s before the last %s (rollup tiers)", r.c.LongEvents, r.c.LongSpan, r.c.BackSpan))
	if res.LongBackfill, err = r.longBackfill(ctx); err != nil {
		return nil, fmt.Errorf("30-day backfill: %w", err)
	}
	r.phase(fmt.Sprintf("4. backfill %d events over %s with truth, then accuracy", r.c.Backfill, r.c.BackSpan))
	truth, err := r.backfill(ctx)
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	// The accuracy queries read the tiers where they serve (as users'
	// do), so they wait for them: an answer's panes count tier panes
	// there, base panes elsewhere.
	if res.Tiers, err = r.waitTiers(ctx); err != nil {
		return nil, err
	}
	if res.Accuracy, res.AccuracyPaths, err = checkAccuracy(ctx, r.api, "pv", truth, res.AccuracyFrom, res.AccuracyTo); err != nil {
		return nil, err
	}
	if err := r.sampleMemory(ctx, "after ingest and backfill"); err != nil {
		return nil, err
	}

	r.logf("3. query load at %d req/s for %s each, while ingesting %d events/s", r.c.QueryRate, r.c.QueryDur, r.c.LiveRate)
	if err := r.queryLoad(ctx); err != nil {
		return nil, err
	}
	if err := r.sampleMemory(ctx, "after the query load"); err != nil {
		return nil, err
	}
	r.phase(fmt.Sprintf("6. heavy query: %d keys published, then one query refused", heavyCountries*heavyDevices))
	if res.Heavy, err = r.heavyQueries(ctx); err != nil {
		return nil, fmt.Errorf("heavy queries: %w", err)
	}
	res.Phases = r.mem.finish(r.storeWrites())
	stopStart := time.Now()
	if err := r.stopSketchd(); err != nil {
		res.Notes = append(res.Notes, "sketchd did not stop cleanly: "+err.Error())
	}
	res.Shutdown = time.Since(stopStart)
	if r.box != nil {
		res.Box = boxUsage(*r.box, r.c.MemoryBox)
	}
	if f, err := os.Open(filepath.Join(r.dir, "sketchd.log")); err == nil {
		res.SlowErrors, err = ParseRequestLog(f, 10*time.Second)
		_ = f.Close()
		if err != nil {
			return nil, err
		}
	}
	res.Machine.LoadEnd = loadAvg()
	res.Elapsed = time.Since(start)
	return res, nil
}

func (r *runner) machine(ctx context.Context) {
	m := &r.res.Machine
	m.LoadStart = loadAvg()
	m.NProc = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			m.MemTotal = strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := r.p.run(ctx, time.Minute, "go", "version"); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if out, err := r.p.run(ctx, time.Minute, "git", "-C", r.repo, "rev-parse", "HEAD"); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := r.p.run(ctx, time.Minute, "git", "-C", r.repo, "status", "--porcelain"); err == nil {
		m.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (r *runner) setupTools(ctx context.Context) error {
	ts := []*tool{
		{name: "nats", pkg: "github.com/nats-io/natscli/nats@latest"},
		{name: "vegeta", pkg: "github.com/tsenart/vegeta/v12@latest"},
	}
	if !r.c.SkipK6 {
		ts = append(ts, &tool{name: "k6", pkg: "go.k6.io/k6@latest"})
	}
	if err := ensureTools(ctx, r.p, ts, r.c.Install); err != nil {
		return err
	}
	r.tools = map[string]*tool{}
	for _, t := range ts {
		r.tools[t.name] = t
		out, _ := r.p.run(ctx, time.Minute, "go", "version", "-m", t.path)
		t.version = modVersion(string(out))
		r.res.Tools = append(r.res.Tools, ToolInfo{t.name, t.version, t.installed})
	}
	return nil
}

// modVersion returns the main module version from `go version -m` output.
func modVersion(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" {
			return f[1] + " " + f[2]
		}
	}
	return "unknown version"
}

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

// eventSize returns the average size of the generated events.
func eventSize(seed uint64) int {
	g := gen.New(gen.Options{Seed: seed})
	now := time.Now()
	total := 0
	const n = 10_000
	for range n {
		b, _ := g.Next(now)
		total += len(b)
	}
	return (total + n/2) / n
}

// waitProcessed polls sketchd's metrics until stream has processed n
// events more than base (counting core drops as processed), and returns the
// time it saw the last of them and the final metrics. It gives up when
// nothing moves for 20s or after timeout.
func (r *runner) waitProcessed(ctx context.Context, stream string, base float64, n int, timeout time.Duration) (time.Time, Metrics, error) {
	deadline := time.Now().Add(timeout)
	last, lastMove := -1.0, time.Now()
	for {
		m, err := r.api.metrics(ctx)
		if err != nil {
			return time.Time{}, nil, err
		}
		got := m.Processed(stream) + m.Sum("sketchd_messages_dropped_total", "stream", stream) - base
		now := time.Now()
		if got >= float64(n) {
			return now, m, nil
		}
		if got > last {
			last, lastMove = got, now
		}
		switch {
		case now.Sub(lastMove) > 20*time.Second:
			return now, m, fmt.Errorf("stream %s: stuck at %.0f of %d events for 20s", stream, got, n)
		case now.After(deadline):
			return now, m, fmt.Errorf("stream %s: %.0f of %d events after %s", stream, got, n, timeout)
		}
		select {
		case <-ctx.Done():
			return now, m, ctx.Err()
		case <-r.exited:
			return now, m, errors.New("sketchd exited (see its log)")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitAcked waits until sketchd has acked every message of the
// JetStream stream jsStream: it acks only after the state holding them is
// committed, so queries then see all of them.
func (r *runner) waitAcked(ctx context.Context, stream, jsStream string) error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(ctx, jsStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	last := float64(info.State.LastSeq)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// sketchd's only consumer of the stream.
		lister := s.ListConsumers(ctx)
		acked := false
		for ci := range lister.Info() {
			acked = acked || float64(ci.AckFloor.Stream) >= last
		}
		if err := lister.Err(); err != nil {
			return err
		}
		if acked {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("stream %s: sequence %.0f not acked (committed) within 60s", stream, last)
}

func (r *runner) ingestCore(ctx context.Context) (Ingest, error) {
	in := Ingest{Stream: "core", Events: r.c.CoreN}
	m, err := r.api.metrics(ctx)
	if err != nil {
		return in, err
	}
	base := m.Processed("core") + m.Sum("sketchd_messages_dropped_total", "stream", "core")
	baseApplied, baseDropped := m.Applied("core"), m.Sum("sketchd_messages_dropped_total", "stream", "core")
	in.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.core --count %d   # flat out; the runner publishes a pre-generated pool in process",
		r.natsURL, r.c.CoreN)}
	start := time.Now()
	pub, err := publish.Run(ctx, r.nc, publish.Options{Subject: "bench.core", Count: r.c.CoreN, Pool: min(r.c.CoreN, 100_000),
		Gen: gen.Options{Seed: r.c.Seed}})
	if err != nil {
		return in, err
	}
	in.PubRate = pub.Rate()
	done, m, err := r.waitProcessed(ctx, "core", base, r.c.CoreN, 5*time.Minute)
	if err != nil {
		return in, err
	}
	in.Elapsed = done.Sub(start)
	in.Applied = int(m.Applied("core") - baseApplied)
	in.Dropped = int(m.Sum("sketchd_messages_dropped_total", "stream", "core") - baseDropped)
	in.Processed = r.c.CoreN - in.Dropped
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	return in, nil
}

func (r *runner) ingestJS(ctx context.Context) (Ingest, error) {
	in := Ingest{Stream: "js", Events: r.c.JSN}
	js, err := jetstream.New(r.nc)
	if err != nil {
		return in, err
	}
	// The JetStream stream sketchd would create, filled before sketchd
	// reads it: what is timed is consumption, as with nats bench js consume.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SKETCHD_JS", Subjects: []string{"bench.js"},
		Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour, Duplicates: 2 * time.Minute}); err != nil {
		return in, err
	}
	pub, err := publish.Run(ctx, r.nc, publish.Options{Subject: "bench.js", JetStream: true, Count: r.c.JSN,
		Pool: min(r.c.JSN, 100_000), Gen: gen.Options{Seed: r.c.Seed + 1}})
	if err != nil {
		return in, err
	}
	in.PubRate = pub.Rate()
	in.Commands = []string{
		fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.js --jetstream --count %d   # into the stream SKETCHD_JS, before sketchd reads it", r.natsURL, r.c.JSN),
		fmt.Sprintf("curl -X POST %s/v1/streams -H 'Content-Type: application/json' -d @js-stream.json   # then time until all are processed", r.base),
	}
	start := time.Now()
	body, code, err := r.api.do(ctx, "POST", "/v1/streams", []byte(jsStreamJSON))
	if err != nil {
		return in, err
	}
	if code != 201 {
		return in, fmt.Errorf("create stream js: %d: %s", code, body)
	}
	done, m, err := r.waitProcessed(ctx, "js", 0, r.c.JSN, 5*time.Minute)
	if err != nil {
		return in, err
	}
	in.Elapsed = done.Sub(start)
	in.Applied = int(m.Applied("js"))
	in.Processed = int(m.Processed("js"))
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	return in, nil
}

// backfill publishes the accuracy data set to pv over BackSpan of event
// time, ending 2 minutes ago, with truth; it measures the ingest rate with
// publishing and consuming at once, checks sketchd's accounting, and waits
// until the last event is committed.
func (r *runner) backfill(ctx context.Context) (*gen.Truth, error) {
	res := r.res
	in := Ingest{Stream: "pv", Events: r.c.Backfill}
	m, err := r.api.metrics(ctx)
	if err != nil {
		return nil, err
	}
	base := m.Processed("pv")
	// What pv counted before (the 30-day backfill): subtracted below.
	counters := func(m Metrics) Accounting {
		return Accounting{
			SkInvalid:     uint64(m.Sum("sketchd_invalid_events_total", "stream", "pv")),
			SkTooLate:     uint64(m.Sum("sketchd_events_total", "stream", "pv", "outcome", "too_late")),
			SkApplied:     uint64(m.Applied("pv")),
			SkLateApplied: uint64(m.Sum("sketchd_events_total", "stream", "pv", "outcome", "late")),
			SkFuture:      uint64(m.Sum("sketchd_events_total", "stream", "pv", "outcome", "future")),
		}
	}
	before := counters(m)
	from := time.Now().Add(-r.c.BackSpan - 2*time.Minute)
	o := publish.Options{Subject: "bench.pv", JetStream: true, Count: r.c.Backfill, From: from,
		Step: r.c.BackSpan / time.Duration(r.c.Backfill), Track: time.Minute,
		Gen: gen.Options{Seed: r.c.Seed + 2, LateFraction: 0.01, InvalidFraction: 0.005}}
	in.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.pv --jetstream --count %d --backfill %s --late-fraction 0.01 --invalid-fraction 0.005 --seed %d --truth truth.jsonl",
		r.natsURL, r.c.Backfill, r.c.BackSpan, o.Gen.Seed)}
	start := time.Now()
	pub, err := publish.Run(ctx, r.nc, o)
	if err != nil {
		return nil, err
	}
	in.PubRate = pub.Rate()
	done, m, err := r.waitProcessed(ctx, "pv", base, r.c.Backfill, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	in.Elapsed = done.Sub(start)
	after := counters(m)
	in.Applied = int(after.SkApplied - before.SkApplied)
	in.Processed = int(m.Processed("pv") - base)
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	res.Backfill = in
	r.logf("   backfill: published %.0f/s, processed %.0f/s", in.PubRate, in.Rate)

	truthEvents := uint64(0)
	for _, p := range pub.Truth.Panes {
		truthEvents += p.Events
	}
	res.PaneKeys = len(pub.Truth.Panes)
	res.Accounting = Accounting{
		Published: pub.Published, Invalid: pub.Invalid, Late: pub.Late, Valid: pub.Published - pub.Invalid,
		SkInvalid:     after.SkInvalid - before.SkInvalid,
		SkTooLate:     after.SkTooLate - before.SkTooLate,
		SkApplied:     after.SkApplied - before.SkApplied,
		SkLateApplied: after.SkLateApplied - before.SkLateApplied,
		SkFuture:      after.SkFuture - before.SkFuture,
		TruthEvent:    truthEvents,
	}
	if err := r.waitAcked(ctx, "pv", "SKETCHD_PV"); err != nil {
		return nil, err
	}
	res.AccuracyFrom = pub.First.Truncate(time.Hour).Add(time.Hour)
	res.AccuracyTo = pub.Last.Truncate(time.Hour)
	if hours := res.AccuracyTo.Sub(res.AccuracyFrom); hours > 24*time.Hour {
		res.AccuracyFrom = res.AccuracyTo.Add(-24 * time.Hour)
	}
	return pub.Truth, nil
}

func (r *runner) sampleMemory(ctx context.Context, phase string) error {
	m, err := r.api.metrics(ctx)
	if err != nil {
		return err
	}
	s := MemSample{Phase: phase, OpenPanes: int(m.Sum("sketchd_open_panes")),
		Events: int(m.Sum("sketchd_events_total") + m.Sum("sketchd_invalid_events_total"))}
	if s.ActiveKeys, err = r.activeKeys(ctx); err != nil {
		return err
	}
	if s.RSS, s.HWM, err = procStatus(r.sketchd.Process.Pid); err != nil {
		return err
	}
	if s.Badger, _, err = diskUsage(filepath.Join(r.dir, "data", "badger")); err != nil {
		return err
	}
	if s.NATS, _, err = diskUsage(filepath.Join(r.dir, "data", "nats")); err != nil {
		return err
	}
	r.res.Memory = append(r.res.Memory, s)
	return nil
}

// waitHTTPIdle waits until sketchd has answered no /v1 request for 2s
// (at most 2 minutes) and returns for how long, since the call, it still
// answered some, and how many.
func (r *runner) waitHTTPIdle(ctx context.Context) (time.Duration, int, error) {
	start := time.Now()
	m, err := r.api.metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	base := m.APIRequests()
	last, lastChange := base, start
	for time.Since(lastChange) < 2*time.Second && time.Since(start) < 2*time.Minute {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		m, err := r.api.metrics(ctx)
		if err != nil {
			return 0, 0, err
		}
		if n := m.APIRequests(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	return lastChange.Sub(start), int(last - base), nil
}

// activeKeys counts the keys with a pane in the last 26 hours, over every
// stream.
func (r *runner) activeKeys(ctx context.Context) (int, error) {
	var list struct {
		Streams []struct {
			Name string `json:"name"`
		} `json:"streams"`
	}
	if err := r.api.getJSON(ctx, "/v1/streams", &list); err != nil {
		return 0, err
	}
	from := strconv.FormatInt(time.Now().Add(-26*time.Hour).Unix(), 10)
	n := 0
	for _, s := range list.Streams {
		var keys struct {
			Keys      []map[string]string `json:"keys"`
			Truncated bool                `json:"truncated"`
		}
		if err := r.api.getJSON(ctx, "/v1/streams/"+s.Name+"/keys?limit=10000&from="+from, &keys); err != nil {
			return 0, err
		}
		n += len(keys.Keys)
	}
	return n, nil
}

// timed runs one query-load tool with sketchd's /metrics scraped once a
// second beside it, and joins the scrapes with the tool's requests into
// the result's timeline.
func (r *runner) timed(ctx context.Context, run func() (QueryLoad, error)) (QueryLoad, error) {
	s := startSampler(ctx, r.api.metrics, time.Second)
	q, err := run()
	samples, failed := s.finish()
	q.Timeline = BuildTimeline(samples, failed, q.requests, q.requests != nil)
	q.CPU = phaseCPU(q.tool, samples, runtime.NumCPU())
	return q, err
}

// queryLoad runs vegeta, then k6, at the query rate while a publisher
// ingests LiveRate events/s into pv.
func (r *runner) queryLoad(ctx context.Context) error {
	res := r.res
	mix := querymix.Mix("pv")
	m, err := r.api.metrics(ctx)
	if err != nil {
		return err
	}
	base := m.Processed("pv")
	liveCtx, stopLive := context.WithCancel(ctx)
	defer stopLive()
	total := 2*r.c.QueryDur + 5*time.Minute // an upper bound; stopped when the tools finish
	type pubDone struct {
		res publish.Result
		err error
	}
	liveDone := make(chan pubDone, 1)
	liveStart := time.Now()
	go func() {
		p, err := publish.Run(liveCtx, r.nc, publish.Options{Subject: "bench.pv", JetStream: true, Rate: float64(r.c.LiveRate),
			Duration: total, Gen: gen.Options{Seed: r.c.Seed + 3}})
		liveDone <- pubDone{p, err}
	}()
	// Let ingest settle for a moment before measuring queries.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	n := 10
	if r.c.Quick {
		n = 5
	}
	r.phase("3. service times, then vegeta at a low rate")
	if res.Service, err = serviceTimes(ctx, r.api, mix, n); err != nil {
		return err
	}
	low := LowRate(res.Service)
	r.logf("   vegeta at %d req/s (half of one core's capacity at the mean service time)", low)
	lowDur := 20 * time.Second
	if r.c.Quick {
		lowDur = 5 * time.Second
	}
	lr, err := r.timed(ctx, func() (QueryLoad, error) {
		return runVegeta(ctx, r.p, r.tools["vegeta"].path, r.dir, r.base, mix, low, lowDur)
	})
	if err != nil {
		return fmt.Errorf("vegeta at %d/s: %w", low, err)
	}
	res.LowRate = &lr
	r.phase(fmt.Sprintf("3. vegeta at %d req/s", r.c.QueryRate))
	heapBefore, heapErr := r.heapSnapshot(ctx, "heap-before-vegeta")
	prof := r.profileDuring(ctx, fmt.Sprintf("cpu, vegeta %d req/s", r.c.QueryRate), r.c.QueryDur)
	v, err := r.timed(ctx, func() (QueryLoad, error) {
		return runVegeta(ctx, r.p, r.tools["vegeta"].path, r.dir, r.base, mix, r.c.QueryRate, r.c.QueryDur)
	})
	if err != nil {
		return fmt.Errorf("vegeta: %w", err)
	}
	res.Vegeta = &v
	pr := <-prof
	r.addProfile(pr.p, pr.err)
	r.addProfile(r.profileHeap(ctx, fmt.Sprintf("heap, after vegeta %d req/s", r.c.QueryRate)))
	if heapErr == nil {
		r.addProfile(r.profileAllocs(ctx, fmt.Sprintf("allocations during vegeta %d req/s", r.c.QueryRate), heapBefore))
	} else {
		r.addProfile(Profile{}, heapErr)
	}
	if t := r.tools["k6"]; t != nil {
		r.phase(fmt.Sprintf("3. k6 at %d req/s", r.c.QueryRate))
		k, err := r.timed(ctx, func() (QueryLoad, error) {
			return runK6(ctx, r.p, t.path, r.dir, r.base, filepath.Join(r.repo, "loadtest", "k6", "queries.js"), mix, r.c.QueryRate, r.c.QueryDur)
		})
		if err != nil {
			return fmt.Errorf("k6: %w", err)
		}
		res.K6 = &k
		r.phase(fmt.Sprintf("3. dashboard: %d users refreshing every 5s", r.c.DashVUs))
		first, err := dashboardFirstLoad(ctx, r.api, querymix.DashboardOf("pv"))
		if err != nil {
			return fmt.Errorf("dashboard first load: %w", err)
		}
		r.logf("   dashboard first load: %d questions, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors", first.Requests, first.P50, first.P99, first.Max, first.Errors)
		prof := r.profileDuring(ctx, "cpu, dashboard", r.c.DashDur)
		d, err := r.timed(ctx, func() (QueryLoad, error) {
			return runDashboard(ctx, r.p, t.path, r.dir, r.base, filepath.Join(r.repo, "loadtest", "k6", "dashboard.js"),
				querymix.DashboardOf("pv"), r.c.DashVUs, r.c.DashDur)
		})
		if err != nil {
			return fmt.Errorf("k6 dashboard: %w", err)
		}
		d.FirstLoad = &first
		res.Dashboard = &d
		pr := <-prof
		r.addProfile(pr.p, pr.err)
	}
	stopLive()
	ld := <-liveDone
	if ld.err != nil && !errors.Is(ld.err, context.Canceled) {
		return fmt.Errorf("live ingest: %w", ld.err)
	}
	live := Ingest{Stream: "pv", Events: int(ld.res.Published), PubRate: ld.res.Rate()}
	live.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.pv --jetstream --rate %d --duration <load>", r.natsURL, r.c.LiveRate)}
	// How far behind sketchd was when the load ended.
	m, err = r.api.metrics(ctx)
	if err != nil {
		return err
	}
	behind := float64(ld.res.Published) - (m.Processed("pv") - base)
	done, m, err := r.waitProcessed(ctx, "pv", base, int(ld.res.Published), 2*time.Minute)
	if err != nil {
		return fmt.Errorf("live ingest: %w", err)
	}
	live.Processed = int(m.Processed("pv") - base)
	live.Elapsed = done.Sub(liveStart)
	live.Rate = float64(live.Processed) / live.Elapsed.Seconds()
	res.Live = live
	res.Notes = append(res.Notes, fmt.Sprintf("When the query load ended sketchd was %.0f events behind the live publisher.", max(0, behind)))
	if res.Drain, res.DrainRequests, err = r.waitHTTPIdle(ctx); err != nil {
		return err
	}
	r.logf("   sketchd answered %d more requests for %s after the load tools exited", res.DrainRequests, res.Drain.Round(time.Millisecond))
	return nil
}
