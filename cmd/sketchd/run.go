package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/emit"
	"github.com/sketchd/sketchd/internal/ingest"
	"github.com/sketchd/sketchd/internal/memlimit"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// version is set at build time with -ldflags "-X main.version=..."; the VCS
// revision from the build info is appended when known.
var version = "dev"

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

// run starts sketchd and blocks until ctx is done, then stops it gracefully.
// No secret (token, password) is in the error it returns.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], getenv, stdout)
	}
	cfg, err := loadConfig(args, getenv, stdout)
	defer func() { err = cfg.redactError(err) }()
	switch {
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, "sketchd", versionString())
		return err
	case err != nil:
		return err
	}
	log := newLogger(cfg, stderr)
	// The listeners first: a taken port fails before anything is opened.
	ln, err := listenHTTP(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer ln.Close() // a no-op once Serve has taken it over
	if cfg.NATSURL == "" {
		if err := checkNATSListen(cfg.NATSListen); err != nil {
			return err
		}
	}
	if cfg.DataDir, err = resolveDataDir(cfg.DataDir, getenv); err != nil {
		return err
	}
	log.Info("starting sketchd", "version", versionString(), "data_dir", cfg.DataDir)

	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	procs := cfg.procs(getenv)
	runtime.GOMAXPROCS(procs)
	log.Info("scheduler threads", "procs", procs, "cpus", defaults.CPUs())
	mem := cfg.memory(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(mem.Limit)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sketchd_memory_limit_bytes",
		Help: fmt.Sprintf("The process's memory limit (--memory-limit): its RSS should stay within it; the Go runtime's soft limit (go_gc_gomemlimit_bytes) is %s of it, less while the resident file pages (sketchd_memory_resident_file_bytes) take more than the other %s.", defaults.RuntimeShare, defaults.FilesShare),
	}, func() float64 { return float64(mem.Budget) }))
	log.Info("memory limit", "limit_mib", mem.Budget>>20, "go_limit_mib", mem.Limit>>20, "query_cache_mib", mem.QueryCache>>20,
		"queries_mib", mem.QueriesTotal>>20, "store_block_cache_mib", mem.StoreBlockCache>>20,
		"jetstream_memory_mib", mem.JetStreamMemory>>20)
	sopts := store.DefaultOptions()
	sopts.BlockCacheSize = mem.StoreBlockCache
	sopts.IndexCacheSize = mem.StoreIndexCache
	sopts.TablePagesTarget = mem.Files
	db, err := store.Open(filepath.Join(cfg.DataDir, "badger"), log.With("component", "store"), reg, sopts)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()

	url := cfg.NATSURL
	var ns *server.Server
	if url == "" {
		host, port, err := splitHostPort(cfg.NATSListen)
		if err != nil {
			return fmt.Errorf("setting nats-listen: %w", err)
		}
		ns, err = ingest.StartServer(ingest.ServerOptions{
			Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			SyncInterval: cfg.NATSSyncInterval.Std(), SyncAlways: cfg.NATSSyncAlways,
			MaxMemory: mem.JetStreamMemory,
		}, log)
		if err != nil {
			return fmt.Errorf("%w (if %s is taken, change it with --nats-listen or $SKETCHD_NATS_LISTEN)", err, cfg.NATSListen)
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		url = ns.ClientURL()
		log.Info("embedded NATS listening", "url", url, "jetstream_dir", filepath.Join(cfg.DataDir, "nats"))
	}
	nc, conn, err := ingest.Connect(ingest.ConnOptions{
		URL: url, CredsFile: cfg.NATSCreds, NKeyFile: cfg.NATSNKey, User: cfg.NATSUser, Password: cfg.NATSPassword,
		Token: cfg.NATSToken, TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey,
	}, log)
	if err != nil {
		return err
	}
	defer func() { conn.Shutdown(); conn.Current().Close() }()

	iopts := ingest.DefaultOptions()
	iopts.FlushInterval = cfg.FlushInterval.Std()
	iopts.AckWait = cfg.AckWait.Std()
	iopts.MaxAckPending = cfg.MaxAckPending
	iopts.Window.MaxOpenPanes = cfg.MaxOpenPanes
	iopts.MaxStreams = cfg.MaxStreams
	iopts.MaxAggregates = cfg.MaxAggregates
	iopts.InstanceID = cfg.InstanceID
	mgr, err := ingest.NewManager(nc, conn, db, log.With("component", "ingest"), iopts)
	if err != nil {
		return err
	}
	if cfg.ClusterName != "" {
		if err := mgr.JoinCluster(ctx, cfg.clusterOptions(), reg); err != nil {
			return fmt.Errorf("join cluster %s: %w", cfg.ClusterName, err)
		}
		log.Info("cluster mode", "cluster", cfg.ClusterName, "replicas", cfg.ClusterReplicas,
			"failover_timeout", cfg.FailoverTimeout, "discovery_interval", cfg.DiscoveryInterval)
	}
	streams := cfg.Streams
	if cfg.Demo && !hasStream(streams, demoStreamName) {
		streams = append(streams, demoStream())
	}
	if err := mgr.Start(ctx, streams); err != nil {
		_ = mgr.Stop(context.Background())
		return err
	}
	reg.MustRegister(mgr.Collector())

	querier := query.New(db, query.Options{
		MaxWindows:       cfg.MaxQueryWindow,
		CacheBytes:       mem.QueryCache,
		WindowCacheBytes: mem.WindowCache,
		ResultBytes:      mem.ResultCache,
		TotalQueryBytes:  mem.QueriesTotal,
		MaxQueryBytes:    mem.QueryMax,
	})
	defer querier.Close() // its ahead jobs: after the emitter and the API, before the store closes
	reg.MustRegister(querier.Collector())
	limiter := memlimit.New(memlimit.Options{Budget: mem.Budget, GoLimit: mem.Limit, Caches: querier}, log.With("component", "memlimit"))
	reg.MustRegister(limiter.Collector())
	defer background(limiter.Run)()
	emitter := emit.New(mgr, querier, db, api.NewEmitRenderer(api.Limits{}), conn.Current,
		log.With("component", "emit"), emit.Options{Interval: cfg.FlushInterval.Std()})
	reg.MustRegister(emitter.Collector())
	stopEmit := background(emitter.Run)
	defer stopEmit()
	h, err := api.New(api.Config{
		Streams: emitter.Streams(mgr), Querier: querier, Panes: db, Publisher: mgr, Ready: mgr.Ready,
		Registry: reg, Gatherer: reg, Logger: log.With("component", "api"),
		AdminToken: cfg.AdminToken, ReadToken: cfg.ReadToken, Pprof: cfg.Pprof,
		Limits: api.Limits{Timeout: cfg.QueryTimeout.Std(), AnswerCacheBytes: mem.AnswerCache},
	})
	if err != nil {
		_ = mgr.Stop(context.Background())
		return err
	}
	lim := api.LimitListener(ln, cfg.MaxConns)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sketchd_http_idle_connections_closed_total",
		Help: "Idle keep-alive HTTP connections closed to make room for a new one at --max-connections.",
	}, func() float64 { return float64(lim.IdleClosed()) }))
	ln = lim
	srv := api.NewServer(cfg.HTTPAddr, h)
	srv.ConnState = lim.ConnState
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.Info("HTTP API listening", "addr", "http://"+ln.Addr().String(), "openapi", "http://"+ln.Addr().String()+"/openapi.json")

	demoCtx, stopDemo := context.WithCancel(ctx)
	demoDone := make(chan struct{})
	if cfg.Demo {
		go func() {
			defer close(demoDone)
			runDemo(demoCtx, conn, cfg.DemoRate, log.With("component", "demo"))
		}()
		log.Info("demo: publishing synthetic events", "subject", demoSubject, "rate_per_s", cfg.DemoRate,
			"try", "curl -s 'http://"+ln.Addr().String()+"/v1/streams/demo/aggregates/latency?group_by=country'")
	} else {
		close(demoDone)
	}

	select {
	case <-ctx.Done():
		log.Info("signal received; shutting down (a second signal forces exit)")
	case err := <-srvErr:
		log.Error("HTTP server failed", "err", err)
	}
	stopDemo()
	<-demoDone
	// HTTP may take half the shutdown budget to drain; then open requests
	// are cut (their contexts end, so queries stop), and the final flush,
	// commit and ack keep at least the other half.
	deadline := time.Now().Add(cfg.ShutdownWait.Std())
	hctx, hcancel := context.WithTimeout(context.Background(), cfg.ShutdownWait.Std()/2)
	if err := srv.Shutdown(hctx); err != nil {
		log.Warn("HTTP shutdown: cutting open requests", "err", err)
		_ = srv.Close()
	}
	hcancel()
	h.Close() // the answers it recomputes in the background: before the store closes
	stopEmit()
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	stopErr := mgr.Stop(sctx)
	conn.Shutdown()
	if err := conn.Current().Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Warn("NATS drain", "err", err)
	}
	if stopErr != nil {
		return fmt.Errorf("shutdown: %w", stopErr)
	}
	log.Info("sketchd stopped")
	return nil
}

// background runs fn in a goroutine of its own until the function it
// returns is called, which cancels fn's context and waits for fn to return
// (at most once: a second call returns at once).
func background(fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return sync.OnceFunc(func() { cancel(); <-done })
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	o := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if port == 0 {
		port = -1 // any free port
	}
	return host, port, nil
}

func hasStream(ss []sketchd.Stream, name string) bool {
	for _, s := range ss {
		if s.Name == name {
			return true
		}
	}
	return false
}

// goCollector is the Go collector with, beside its default metrics, the
// runtime's estimates of the CPU its collector takes (go_cpu_classes_gc_*:
// assists, dedicated and idle mark workers, pauses) and its heap goal and
// live heap (go_gc_heap_goal_bytes, go_gc_heap_live_bytes): how much a
// cycle costs the queries beside it, and why cycles come as often as they
// do (docs/operations.md, "What the collector costs").
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{
		Matcher: regexp.MustCompile(`^/cpu/classes/gc/|^/gc/heap/(goal|live):bytes$`),
	}))
}
