package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/emit"
	"github.com/sketchd/sketchd/internal/ingest"
	"github.com/sketchd/sketchd/internal/memlimit"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// The start steps of run, in its order. Each opens one part from the
// configuration and the parts before it; a step that fails has closed
// what it opened itself.

// listen opens the HTTP listener and, with the embedded NATS server,
// checks that its port is free, so a taken port fails before anything is
// opened.
func listen(cfg config) (net.Listener, error) {
	ln, err := listenHTTP(cfg.HTTPAddr)
	if err != nil {
		return nil, err
	}
	if cfg.NATSURL == "" {
		if err := checkNATSListen(cfg.NATSListen); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

// setRuntime sets the scheduler threads and the Go runtime's soft memory
// limit, and returns how the memory limit is divided (docs/operations.md,
// "Memory" and "Scheduler threads").
func setRuntime(cfg config, getenv func(string) string, reg prometheus.Registerer, log *slog.Logger) defaults.MemorySplit {
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
	return mem
}

// openStore opens the Badger store under the data directory with its
// share of the memory limit.
func openStore(cfg config, mem defaults.MemorySplit, reg prometheus.Registerer, log *slog.Logger) (*store.DB, error) {
	sopts := store.DefaultOptions()
	sopts.BlockCacheSize = mem.StoreBlockCache
	sopts.IndexCacheSize = mem.StoreIndexCache
	sopts.TablePagesTarget = mem.Files
	db, err := store.Open(filepath.Join(cfg.DataDir, "badger"), log.With("component", "store"), reg, sopts)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// closeStore closes the store, logging a failure: the last step of a stop.
func closeStore(db *store.DB, log *slog.Logger) {
	if err := db.Close(); err != nil {
		log.Error("close store", "err", err)
	}
}

// startNATS starts the embedded NATS server unless --nats-url names one,
// and connects to it. stop closes the connection, then the embedded
// server.
func startNATS(cfg config, mem defaults.MemorySplit, log *slog.Logger) (nc *nats.Conn, conn *ingest.ConnState, stop func(), err error) {
	url := cfg.NATSURL
	stopServer := func() {}
	if url == "" {
		host, port, err := splitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("setting nats-listen: %w", err)
		}
		ns, err := ingest.StartServer(ingest.ServerOptions{
			Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			SyncInterval: cfg.NATSSyncInterval.Std(), SyncAlways: cfg.NATSSyncAlways,
			MaxMemory: mem.JetStreamMemory,
		}, log)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w (if %s is taken, change it with --nats-listen or $SKETCHD_NATS_LISTEN)", err, cfg.NATSListen)
		}
		stopServer = func() { ns.Shutdown(); ns.WaitForShutdown() }
		url = ns.ClientURL()
		log.Info("embedded NATS listening", "url", url, "jetstream_dir", filepath.Join(cfg.DataDir, "nats"))
	}
	nc, conn, err = ingest.Connect(ingest.ConnOptions{
		URL: url, CredsFile: cfg.NATSCreds, NKeyFile: cfg.NATSNKey, User: cfg.NATSUser, Password: cfg.NATSPassword,
		Token: cfg.NATSToken, TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey,
	}, log)
	if err != nil {
		stopServer()
		return nil, nil, nil, err
	}
	return nc, conn, func() { conn.Shutdown(); conn.Current().Close(); stopServer() }, nil
}

// startIngest starts ingestion: joins the cluster when one is named, and
// starts the configured streams (and the demo's with --demo). It stops
// what it started when it fails.
func startIngest(ctx context.Context, cfg config, nc *nats.Conn, conn *ingest.ConnState, db *store.DB, reg prometheus.Registerer, log *slog.Logger) (*ingest.Manager, error) {
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
		return nil, err
	}
	if cfg.ClusterName != "" {
		if err := mgr.JoinCluster(ctx, cfg.clusterOptions(), reg); err != nil {
			return nil, fmt.Errorf("join cluster %s: %w", cfg.ClusterName, err)
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
		return nil, err
	}
	reg.MustRegister(mgr.Collector())
	return mgr, nil
}

// startQueries opens the querier over the store with the query caches'
// and budgets' shares of the memory limit.
func startQueries(cfg config, db *store.DB, mem defaults.MemorySplit, reg prometheus.Registerer) *query.Querier {
	querier := query.New(db, query.Options{
		MaxWindows:       cfg.MaxQueryWindow,
		CacheBytes:       mem.QueryCache,
		WindowCacheBytes: mem.WindowCache,
		ResultBytes:      mem.ResultCache,
		TotalQueryBytes:  mem.QueriesTotal,
		MaxQueryBytes:    mem.QueryMax,
	})
	reg.MustRegister(querier.Collector())
	return querier
}

// startLimiter returns the memory limiter's loop (run in the background):
// it holds the Go runtime's soft limit and the query caches to the memory
// limit while the file pages and the live heap move.
func startLimiter(mem defaults.MemorySplit, caches memlimit.Caches, reg prometheus.Registerer, log *slog.Logger) func(context.Context) {
	limiter := memlimit.New(memlimit.Options{Budget: mem.Budget, GoLimit: mem.Limit, Caches: caches}, log.With("component", "memlimit"))
	reg.MustRegister(limiter.Collector())
	return limiter.Run
}

// newHandler builds the HTTP API over the running parts.
func newHandler(cfg config, emitter *emit.Service, querier *query.Querier, db *store.DB, mgr *ingest.Manager, mem defaults.MemorySplit, reg *prometheus.Registry, log *slog.Logger) (*api.Handler, error) {
	return api.New(api.Config{
		Streams: emitter.Streams(mgr), Querier: querier, Panes: db, Publisher: mgr, Ready: mgr.Ready,
		Registry: reg, Gatherer: reg, Logger: log.With("component", "api"),
		AdminToken: cfg.AdminToken, ReadToken: cfg.ReadToken, Pprof: cfg.Pprof,
		Limits: api.Limits{Timeout: cfg.QueryTimeout.Std(), AnswerCacheBytes: mem.AnswerCache},
	})
}

// serveHTTP serves h on ln, at most --max-connections at once, and
// returns the server, the address it listens on and where Serve's error
// arrives.
func serveHTTP(cfg config, ln net.Listener, h http.Handler, reg prometheus.Registerer, log *slog.Logger) (*http.Server, string, <-chan error) {
	lim := api.LimitListener(ln, cfg.MaxConns)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sketchd_http_idle_connections_closed_total",
		Help: "Idle keep-alive HTTP connections closed to make room for a new one at --max-connections.",
	}, func() float64 { return float64(lim.IdleClosed()) }))
	srv := api.NewServer(cfg.HTTPAddr, h)
	srv.ConnState = lim.ConnState
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(lim) }()
	addr := lim.Addr().String()
	log.Info("HTTP API listening", "addr", "http://"+addr, "openapi", "http://"+addr+"/openapi.json")
	return srv, addr, srvErr
}

// startDemo publishes the demo's synthetic events with --demo until ctx
// ends or stop is called, which waits for the publisher.
func startDemo(ctx context.Context, cfg config, conn *ingest.ConnState, addr string, log *slog.Logger) (stop func()) {
	if !cfg.Demo {
		return func() {}
	}
	log.Info("demo: publishing synthetic events", "subject", demoSubject, "rate_per_s", cfg.DemoRate,
		"try", "curl -s 'http://"+addr+"/v1/streams/demo/aggregates/latency?group_by=country'")
	demoCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runDemo(demoCtx, conn, cfg.DemoRate, log.With("component", "demo"))
	}()
	return func() { cancel(); <-done }
}
