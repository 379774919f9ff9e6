package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/emit"
	"github.com/sketchd/sketchd/internal/ingest"
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
//
// Each start step below opens one part on top of the ones before it (data
// flows one way: NATS and the store, then ingestion, then the queries and
// what serves them), and the defers close them in the reverse order once
// stopServing has drained the HTTP server, the emitter and ingestion.
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
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	defer ln.Close() // a no-op once Serve has taken it over
	if cfg.DataDir, err = resolveDataDir(cfg.DataDir, getenv); err != nil {
		return err
	}
	log.Info("starting sketchd", "version", versionString(), "data_dir", cfg.DataDir)

	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mem := setRuntime(cfg, getenv, reg, log)
	db, err := openStore(cfg, mem, reg, log)
	if err != nil {
		return err
	}
	defer closeStore(db, log)
	nc, conn, stopNATS, err := startNATS(cfg, mem, log)
	if err != nil {
		return err
	}
	defer stopNATS()
	mgr, err := startIngest(ctx, cfg, nc, conn, db, reg, log)
	if err != nil {
		return err
	}
	querier := startQueries(cfg, db, mem, reg)
	defer querier.Close() // its ahead jobs: after the emitter and the API, before the store closes
	defer background(startLimiter(mem, querier, reg, log))()
	emitter := emit.New(mgr, querier, db, api.NewEmitRenderer(api.Limits{}), conn.Current,
		log.With("component", "emit"), emit.Options{Interval: cfg.FlushInterval.Std()})
	reg.MustRegister(emitter.Collector())
	stopEmit := background(emitter.Run)
	defer stopEmit()
	h, err := newHandler(cfg, emitter, querier, db, mgr, mem, reg, log)
	if err != nil {
		_ = mgr.Stop(context.Background())
		return err
	}
	srv, addr, srvErr := serveHTTP(cfg, ln, h, reg, log)
	stopDemo := startDemo(ctx, cfg, conn, addr, log)

	select {
	case <-ctx.Done():
		log.Info("signal received; shutting down (a second signal forces exit)")
	case err := <-srvErr:
		log.Error("HTTP server failed", "err", err)
	}
	stopDemo()
	if err := stopServing(cfg, srv, h, stopEmit, mgr, conn, log); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("sketchd stopped")
	return nil
}

// stopServing stops taking work and finishes what was taken, in the order
// that loses nothing: HTTP may take half the shutdown budget to drain;
// then open requests are cut (their contexts end, so queries stop); the
// answers the handler recomputes in the background and the emitter stop
// before ingestion's final flush, commit and ack, which keep at least the
// other half; then the NATS connection drains.
func stopServing(cfg config, srv *http.Server, h *api.Handler, stopEmit func(), mgr *ingest.Manager, conn *ingest.ConnState, log *slog.Logger) error {
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
	return stopErr
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
