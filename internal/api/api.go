// Package api serves sketchd's HTTP interface: the stream admin API, the
// query API over query.Querier, health, metrics and the OpenAPI document.
//
// It is the only package that imports chi. Handlers hold small
// consumer-side interfaces (Streams, Querier); cmd/sketchd wires the real
// implementations. Every error is mapped by one function, problemFor, from
// sentinel and typed errors to an RFC 9457 problem with a stable machine
// code (see docs/api.md); handlers hand errors to writeError.
package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/console"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/promapi"
	"github.com/sketchd/sketchd/internal/query"
)

// Streams is the stream registry as the API needs it.
type Streams interface {
	List(ctx context.Context) ([]sketchd.StreamStatus, error)
	// Get fails with sketchd.ErrNotFound for an unknown name.
	Get(ctx context.Context, name string) (sketchd.StreamStatus, error)
	// Create fails with sketchd.ErrExists, or with validation errors
	// (*sketchd.FieldError, possibly joined with errors.Join).
	Create(ctx context.Context, spec sketchd.Stream) (sketchd.StreamStatus, error)
	// Delete fails with sketchd.ErrNotFound for an unknown name.
	Delete(ctx context.Context, name string, opts sketchd.DeleteOptions) error
	// Alter fails with sketchd.ErrNotFound for an unknown name, or with
	// validation errors like Create.
	Alter(ctx context.Context, name string, a sketchd.StreamAlter) (sketchd.StreamStatus, error)
}

// Querier answers queries over stored panes. *query.Querier implements it.
type Querier interface {
	Query(ctx context.Context, t query.Target, q query.Query) (*query.Result, error)
	Keys(ctx context.Context, t query.Target, from, to int64, where map[string][]string, limit int) ([]map[string]string, bool, error)
	KeysFiltered(ctx context.Context, t query.Target, from, to int64, where []query.Filter, limit int) ([]map[string]string, bool, error)
	QueryMulti(ctx context.Context, t query.Target, q query.Query, aggregates []string) ([]*query.Result, error)
}

var _ Querier = (*query.Querier)(nil)

// Limits bound what one request may ask for. Zero (or negative) values
// take the defaults of DefaultLimits.
type Limits struct {
	// MaxRange is the widest to - from a query or key listing may span
	// (also on /api/v1). Default 366 days.
	MaxRange time.Duration
	// Timeout bounds the handling of one /v1 request; the context given to
	// Streams and Querier carries it. Past it the answer is 504. Default 10s.
	Timeout time.Duration
	// MaxBodyBytes bounds request bodies (413 past it). Default 1 MiB.
	MaxBodyBytes int64
	// MaxWhereValues bounds the where= values of one request. Default 1000.
	MaxWhereValues int
	// MaxQuantiles bounds the q and cdf values of one request. Default 100.
	MaxQuantiles int
	// MaxItems bounds the item values of one request. Default 1000.
	MaxItems int
	// MaxTop bounds top. Default 1000.
	MaxTop int
	// MaxSample bounds n. Default 10,000.
	MaxSample int
	// MaxKeys bounds the limit of a key listing. Default 10,000; the
	// listing's default limit is 1000.
	MaxKeys int
	// MaxParams bounds the query parameters of one request (each repeat
	// counts), checked before any is decoded: past it the answer is 422
	// query_too_large with limit max_parameters. Default MaxWhereValues +
	// MaxItems + 2 × MaxQuantiles + 64 (2264 with the defaults).
	MaxParams int
	// MaxOutputWindows bounds the samples of a /api/v1 query answer
	// (errorType execution past it) and the windows of a multi-aggregate
	// answer. Default 100,000. (A single aggregate's answer is bounded by
	// query.Options.MaxOutputWindows, checked from the key index before any
	// pane is read: 422 query_too_large with limit max_output_windows.)
	MaxOutputWindows int
	// MaxSlidingMerges bounds the work of a sliding query (window wider
	// than step), which merges every pane into each window that covers it:
	// per key, pane slots scanned × min(window/step, windows). Past it the
	// answer is 422 query_too_large with limit max_sliding_merges, before
	// any pane is read. Default 1,000,000.
	MaxSlidingMerges int64
	// MaxConcurrent bounds the queries (aggregates, sketches, key listings)
	// running at once; more wait up to QueueWait for a slot, then get 503
	// overloaded with Retry-After, instead of queueing until their timeout
	// while memory grows. Default 4 × defaults.CPUs()
	// (the CPUs, not the scheduler threads --procs sets).
	MaxConcurrent int
	// QueueWait is how long a query waits for a slot. Default 1s. Behind a
	// queue that has not been empty for 100 ms (overload, not a burst) a
	// query waits at most 20 ms (shed.go).
	QueueWait time.Duration
	// HeavyQueryCost: a request whose computations are estimated to cost
	// more than this in total is heavy (query.Cost.Units: one per stored
	// sketch read, keys × pane slots, plus one per KiB held; known before
	// any pane is read), and runs in the heavy lane, which has HeavyPercent
	// of the MaxConcurrent slots (rounded up, at least one), so that cheap
	// requests always find a slot and a standing queue of heavy ones does
	// not shed them (lanes.go). Default 50,000 (about 165 ms of one core
	// at BenchmarkFirstSeries' 3.3 µs a one-minute HLL pane, internal/query): the first computation of a day of hourly
	// windows over 180 keys from an unaligned from (259,200 minute panes)
	// is heavy; that of the last hour (10,800), or of the same day from the
	// hourly tier (4,320 tier panes), is not.
	HeavyQueryCost int64
	// HeavyPercent is the share of the slots the heavy lane has, in
	// percent of MaxConcurrent, rounded up. Default 25 (2 of 8 on 2 CPUs;
	// 12, half the CPUs, gave cheap questions a better tail in a benchmark
	// but shed the load runner's day and month questions: docs/operations.md,
	// "Query lanes"); 100 lets heavy requests take every slot (no lanes).
	HeavyPercent int
	// HeavyQueueWait is how long a heavy request waits for the heavy lane
	// (a token, then a slot, both within it), holding no slot. Default 5s. Behind a heavy
	// queue that has not been empty for 1 s it waits at most 200 ms
	// (shed.go).
	HeavyQueueWait time.Duration
	// AnswerCacheBytes bounds the cache of rendered answers (answers.go),
	// which serves a question asked again before the next commit without
	// querying or rendering, and, with half as much again, the rendered
	// final windows (winmemo.go), which a question asked again after a
	// commit splices instead of rendering. Default 16 MiB; negative
	// disables both.
	AnswerCacheBytes int64 `default:"keep-negative"`
	// StaleAnswerAge is how old a cached answer of the same question may
	// be to be served, marked stale (header Sketchd-Stale, its own as_of),
	// to a request that would otherwise wait for another request's
	// computation of the answer at a newer commit (flight.go: HTTP's
	// stale-while-revalidate for collapsed requests). Default 10s: twice
	// the fastest refresh of a Grafana dashboard (its min_refresh_interval,
	// 5s; Varnish's default grace is 10s too), since a dashboard refreshing
	// every 5 s finds its previous answer about 5 s old, on the edge of a
	// 5 s bound (docs/operations.md, "Query latency at load");
	// negative: such requests wait.
	StaleAnswerAge time.Duration `default:"keep-negative"`
}

// DefaultLimits returns the defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxRange:         366 * 24 * time.Hour,
		Timeout:          10 * time.Second,
		MaxBodyBytes:     1 << 20,
		MaxWhereValues:   1000,
		MaxQuantiles:     100,
		MaxItems:         1000,
		MaxTop:           1000,
		MaxSample:        10_000,
		MaxKeys:          10_000,
		MaxParams:        1000 + 1000 + 2*100 + 64,
		MaxOutputWindows: 100_000,
		MaxSlidingMerges: 1_000_000,
		MaxConcurrent:    4 * defaults.CPUs(),
		QueueWait:        time.Second,
		HeavyQueryCost:   50_000,
		HeavyPercent:     25,
		HeavyQueueWait:   5 * time.Second,
		AnswerCacheBytes: 16 << 20,
		StaleAnswerAge:   10 * time.Second,
	}
}

// withDefaults fills the unset limits (zero or negative) from
// DefaultLimits; an unset MaxParams follows the other limits.
func (l Limits) withDefaults() Limits {
	deriveParams := l.MaxParams <= 0
	l = defaults.Fill(l, DefaultLimits())
	if deriveParams {
		l.MaxParams = l.MaxWhereValues + l.MaxItems + 2*l.MaxQuantiles + 64
	}
	return l
}

// Config holds the handler's dependencies and settings.
type Config struct {
	Streams Streams // required
	Querier Querier // required
	// Panes is where POST .../import merges sketches (nil: import answers
	// 503 unavailable).
	Panes PaneUpdater

	// Ready reports whether the service can serve: nil means always ready.
	// Its error text is shown by /readyz (503).
	Ready func(ctx context.Context) error

	// Registry receives the HTTP metrics; Gatherer is what /metrics serves.
	// Both nil: a private registry serves the HTTP metrics only. Registry
	// set and Gatherer nil: Registry must also be a prometheus.Gatherer.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer

	// Logger receives one line per request and the details of internal
	// errors. nil = discard.
	Logger *slog.Logger

	// AdminToken, when set, is required as a Bearer token for POST and
	// DELETE under /v1. When empty, those need only what reads need.
	AdminToken string
	// ReadToken, when set, is required as a Bearer token for everything
	// under /v1; the admin token is accepted too. Health, metrics, the
	// OpenAPI document and the console's static files are never behind a
	// token.
	ReadToken string

	// Publisher, when set, serves POST /v1/streams/{stream}/events (HTTP
	// ingest); nil: that route is not mounted.
	Publisher Publisher

	// Pprof mounts net/http/pprof under /debug/pprof.
	Pprof bool

	// Now is the clock for the from/to defaults. nil = time.Now.
	Now func() time.Time

	// Limits bound requests; zero fields take DefaultLimits.
	Limits Limits
}

// server holds what the handlers need.
type server struct {
	streams Streams
	querier Querier
	met     *metrics
	// publisher and pubm serve HTTP ingest (nil: not mounted).
	publisher Publisher
	pubm      *publishMetrics
	panes     PaneUpdater
	ready     func(ctx context.Context) error
	log       *slog.Logger
	now       func() time.Time
	limits    Limits
	// SHA-256 of the tokens, and whether each is set (1) or not (0); the
	// tokens themselves are not kept.
	adminDigest, readDigest [sha256.Size]byte
	adminSet, readSet       int
	mux                     *chi.Mux
	slots                   chan struct{} // admission: one token per running query
	queue                   slotQueue     // the requests waiting for a slot (shed.go)
	lanes                   *lanes        // the heavy lane and the lanes' metrics (lanes.go)
	answers                 *answerCache  // nil when disabled
	flights                 answerFlights // answer computations under way
	refreshing              chan struct{} // one background refresh at a time (flight.go)
	bg                      background    // the refreshes' goroutines, owned by the Handler (flight.go)
	windows                 *answerCache  // rendered final windows (winmemo.go); nil when disabled
}

// Handler is the HTTP handler of the whole API, and the owner of the
// work it runs in the background (answers recomputed after a stale one
// was served: flight.go). Close ends that work.
type Handler struct {
	http.Handler
	s *server
}

// Close cancels the background refreshes and waits for them to end; no
// new one starts (a request that would start one computes its answer
// itself). Call it after the HTTP server has shut down and before the
// store closes.
func (h *Handler) Close() { h.s.bg.close() }

// New returns the HTTP handler of the whole API.
func New(cfg Config) (*Handler, error) {
	if cfg.Streams == nil || cfg.Querier == nil {
		return nil, errors.New("api: Config.Streams and Config.Querier are required")
	}
	reg, gath, err := registries(cfg)
	if err != nil {
		return nil, err
	}
	s, err := newServer(cfg, reg)
	if err != nil {
		return nil, err
	}
	r, err := s.routes(cfg, gath)
	if err != nil {
		return nil, err
	}
	return &Handler{Handler: r, s: s}, nil
}

// registries returns where the API registers its metrics and what
// /metrics gathers: a registry of its own when the Config has neither.
func registries(cfg Config) (prometheus.Registerer, prometheus.Gatherer, error) {
	reg, gath := cfg.Registry, cfg.Gatherer
	switch {
	case reg == nil && gath == nil:
		r := prometheus.NewRegistry()
		return r, r, nil
	case reg == nil:
		return nil, nil, errors.New("api: Config.Gatherer set without Config.Registry")
	case gath == nil:
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			return nil, nil, errors.New("api: Config.Registry is not a prometheus.Gatherer; set Config.Gatherer")
		}
		gath = g
	}
	return reg, gath, nil
}

// newServer returns the handlers' shared state: the parts the Config
// names, the limits with their defaults, the admission slots and lanes,
// the answer caches and the tokens' digests.
func newServer(cfg Config, reg prometheus.Registerer) (*server, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &server{
		met:       m,
		streams:   cfg.Streams,
		querier:   cfg.Querier,
		publisher: cfg.Publisher,
		panes:     cfg.Panes,
		ready:     cfg.Ready,
		log:       cfg.Logger,
		now:       cfg.Now,
		limits:    cfg.Limits.withDefaults(),
	}
	s.slots = make(chan struct{}, s.limits.MaxConcurrent)
	if s.lanes, err = newLanes(s.limits, reg); err != nil {
		return nil, err
	}
	s.refreshing = make(chan struct{}, 1)
	s.bg.open()
	s.answers = newAnswerCache(s.limits.AnswerCacheBytes)
	s.windows = newAnswerCache(s.limits.AnswerCacheBytes / 2)
	if s.publisher != nil {
		if s.pubm, err = newPublishMetrics(reg); err != nil {
			return nil, err
		}
	}
	if cfg.AdminToken != "" {
		s.adminDigest, s.adminSet = sha256.Sum256([]byte(cfg.AdminToken)), 1
	}
	if cfg.ReadToken != "" {
		s.readDigest, s.readSet = sha256.Sum256([]byte(cfg.ReadToken)), 1
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// routes returns the router of every endpoint: the health, metrics,
// OpenAPI and console endpoints (public), pprof (with --pprof, behind the
// admin token), /v1 and the Prometheus HTTP API (behind the read token,
// the timeout and admission).
func (s *server) routes(cfg Config, gath prometheus.Gatherer) (http.Handler, error) {
	r := chi.NewRouter()
	s.mux = r
	// NotFound and MethodNotAllowed first: sub-routers inherit them.
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)
	// GetHead answers HEAD wherever GET is routed (net/http drops the body).
	r.Use(requestID, s.instrument(s.met), middleware.GetHead, s.pretty)

	r.Get("/livez", s.livez)
	r.Get("/healthz", s.livez)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gath, promhttp.HandlerOpts{}))
	r.Get("/openapi.json", serveOpenAPI)
	// The web console: static files, public like the health endpoints; the
	// data it shows comes from /v1, behind the tokens.
	ui, err := console.Handler(http.HandlerFunc(s.notFound))
	if err != nil {
		return nil, err
	}
	r.Method(http.MethodGet, "/", ui)
	r.Method(http.MethodGet, console.AssetPrefix+"{file}", ui)
	if cfg.Pprof {
		r.Group(func(r chi.Router) {
			r.Use(s.guardPprof)
			mountPprof(r)
		})
	}

	r.Route("/v1", func(r chi.Router) {
		r.Use(s.timeout, s.limitBody, s.authRead)
		r.Get("/streams", s.listStreams)
		r.With(s.authAdmin).Post("/streams", s.createStream)
		r.Get("/streams/{stream}", s.getStream)
		r.With(s.authAdmin).Delete("/streams/{stream}", s.deleteStream)
		r.With(s.authAdmin).Patch("/streams/{stream}", s.alterStream)
		r.With(s.admitLazy).Get("/streams/{stream}/keys", s.keys)
		r.With(s.admitLazy).Get("/streams/{stream}/aggregates/{aggregate}", s.query)
		r.With(s.admit).Get("/streams/{stream}/aggregates/{aggregate}/sketch", s.sketch)
		r.With(s.admit).Get("/streams/{stream}/aggregates/{aggregate}/setop", s.setop)
		r.With(s.authAdmin).Post("/streams/{stream}/aggregates/{aggregate}/import", s.importSketch)
		s.publishRoute(r)
		r.With(s.admitLazy).Get("/streams/{stream}/query", s.multiQuery)
	})
	// The Prometheus HTTP API subset that Grafana and promtool use
	// (internal/promapi, docs/grafana.md), behind the read token, timeout
	// and admission of /v1.
	// Its query answers are served as the aggregate queries' (promanswers.go).
	prom := promapi.New(promapi.Config{Streams: cfg.Streams, Querier: promQuerier{cfg.Querier, s}, Now: s.now, Logger: s.log,
		Options: promapi.Options{MaxRange: s.limits.MaxRange, MaxSamples: s.limits.MaxOutputWindows},
		Answers: promAnswers{s}})
	r.Route(promapi.Prefix, func(r chi.Router) {
		r.Use(s.timeout, s.limitBody, s.authRead)
		for _, p := range promapi.Paths {
			r.With(s.promAdmission(p)).Method(http.MethodGet, p, prom)
			r.With(s.promAdmission(p)).Method(http.MethodPost, p, prom)
		}
	})
	return r, nil
}

// mountPprof serves net/http/pprof's profiles under /debug/pprof/, but not
// its cmdline endpoint (nor expvar's /debug/vars, which chi's
// middleware.Profiler mounts): the command line may hold tokens and
// passwords given as flags. The routes are flat, not a sub-router: chi's
// Match reports a HEAD route for a sub-router's "/", which would defeat
// middleware.GetHead there.
func mountPprof(r chi.Router) {
	const p = "/debug/pprof/"
	r.Get(p, pprof.Index)
	r.Get(p+"profile", pprof.Profile)
	r.Get(p+"trace", pprof.Trace)
	r.Get(p+"symbol", pprof.Symbol)
	r.Post(p+"symbol", pprof.Symbol)
	r.Get(p+"cmdline", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, newProblem(codeNotFound,
			"the command line is not served: it may hold secrets"))
	})
	// Named profiles (heap, goroutine, allocs, block, mutex, threadcreate);
	// pprof answers an unknown name with 404.
	r.Get(p+"{profile}", pprof.Index)
}

// MaxHeaderBytes bounds a request's header, request line (and so its URL
// and query string) included. net/http answers 431 past it, before the
// handler runs.
const MaxHeaderBytes = 1 << 20

// NewServer returns an http.Server for h with the service's timeouts:
// ReadHeaderTimeout 5s, ReadTimeout 15s, WriteTimeout 30s (above the
// default request timeout of 10s, so a 504 can still be written),
// IdleTimeout 60s; and MaxHeaderBytes 1 MiB.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}
