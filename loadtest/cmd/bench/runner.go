package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sketchd/sketchd/internal/cgroup"
)

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
	r.phase("2. ingest cost of rollup tiers")
	if res.TierCost, err = r.tierCost(ctx); err != nil {
		return nil, fmt.Errorf("ingest cost of rollup tiers: %w", err)
	}

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
