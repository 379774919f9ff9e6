// Package api serves sketchd's HTTP interface: the stream admin API, the
// query API over window.Querier, health, metrics and the OpenAPI document.
//
// It is the only package that imports chi. Handlers hold small
// consumer-side interfaces (Streams, Querier); cmd/sketchd wires the real
// implementations. Every error is mapped by one function, problemFor, from
// sentinel and typed errors to an RFC 9457 problem with a stable machine
// code (see docs/api.md); handlers hand errors to writeError.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/window"
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
	Delete(ctx context.Context, name string) error
}

// Querier answers queries over stored panes. *window.Querier implements it.
type Querier interface {
	Query(ctx context.Context, t window.Target, q window.Query) (*window.Result, error)
	Keys(ctx context.Context, t window.Target, from, to int64, where map[string][]string, limit int) ([]map[string]string, bool, error)
}

var _ Querier = (*window.Querier)(nil)

// Limits bound what one request may ask for. Zero values take the defaults
// of DefaultLimits.
type Limits struct {
	// MaxRange is the widest to - from a query or key listing may span.
	// Default 366 days.
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
}

// DefaultLimits returns the defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxRange:       366 * 24 * time.Hour,
		Timeout:        10 * time.Second,
		MaxBodyBytes:   1 << 20,
		MaxWhereValues: 1000,
		MaxQuantiles:   100,
		MaxItems:       1000,
		MaxTop:         1000,
		MaxSample:      10_000,
		MaxKeys:        10_000,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxRange <= 0 {
		l.MaxRange = d.MaxRange
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxWhereValues <= 0 {
		l.MaxWhereValues = d.MaxWhereValues
	}
	if l.MaxQuantiles <= 0 {
		l.MaxQuantiles = d.MaxQuantiles
	}
	if l.MaxItems <= 0 {
		l.MaxItems = d.MaxItems
	}
	if l.MaxTop <= 0 {
		l.MaxTop = d.MaxTop
	}
	if l.MaxSample <= 0 {
		l.MaxSample = d.MaxSample
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = d.MaxKeys
	}
	return l
}

// Config holds the handler's dependencies and settings.
type Config struct {
	Streams Streams // required
	Querier Querier // required

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
	// under /v1; the admin token is accepted too. Health, metrics and the
	// OpenAPI document are never behind a token.
	ReadToken string

	// Pprof mounts net/http/pprof under /debug/pprof.
	Pprof bool

	// Now is the clock for the from/to defaults. nil = time.Now.
	Now func() time.Time

	// Limits bound requests; zero fields take DefaultLimits.
	Limits Limits
}

// server holds what the handlers need.
type server struct {
	streams    Streams
	querier    Querier
	ready      func(ctx context.Context) error
	log        *slog.Logger
	now        func() time.Time
	limits     Limits
	adminToken []byte
	readToken  []byte
	mux        *chi.Mux
}

// New returns the HTTP handler of the whole API.
func New(cfg Config) (http.Handler, error) {
	if cfg.Streams == nil || cfg.Querier == nil {
		return nil, errors.New("api: Config.Streams and Config.Querier are required")
	}
	reg, gath := cfg.Registry, cfg.Gatherer
	switch {
	case reg == nil && gath == nil:
		r := prometheus.NewRegistry()
		reg, gath = r, r
	case reg == nil:
		return nil, errors.New("api: Config.Gatherer set without Config.Registry")
	case gath == nil:
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			return nil, errors.New("api: Config.Registry is not a prometheus.Gatherer; set Config.Gatherer")
		}
		gath = g
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &server{
		streams:    cfg.Streams,
		querier:    cfg.Querier,
		ready:      cfg.Ready,
		log:        cfg.Logger,
		now:        cfg.Now,
		limits:     cfg.Limits.withDefaults(),
		adminToken: []byte(cfg.AdminToken),
		readToken:  []byte(cfg.ReadToken),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}

	r := chi.NewRouter()
	s.mux = r
	// NotFound and MethodNotAllowed first: sub-routers inherit them.
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)
	r.Use(requestID, s.instrument(m))

	r.Get("/livez", s.livez)
	r.Get("/healthz", s.livez)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gath, promhttp.HandlerOpts{}))
	r.Get("/openapi.json", serveOpenAPI)
	if cfg.Pprof {
		r.Mount("/debug", middleware.Profiler())
	}

	r.Route("/v1", func(r chi.Router) {
		r.Use(s.timeout, s.limitBody, s.authRead)
		r.Get("/streams", s.listStreams)
		r.With(s.authAdmin).Post("/streams", s.createStream)
		r.Get("/streams/{stream}", s.getStream)
		r.With(s.authAdmin).Delete("/streams/{stream}", s.deleteStream)
		r.Get("/streams/{stream}/keys", s.keys)
		r.Get("/streams/{stream}/aggregates/{aggregate}", s.query)
		r.Get("/streams/{stream}/aggregates/{aggregate}/sketch", s.sketch)
	})
	return r, nil
}

// NewServer returns an http.Server for h with the service's timeouts:
// ReadHeaderTimeout 5s, ReadTimeout 15s, WriteTimeout 30s (above the
// default request timeout of 10s, so a 504 can still be written),
// IdleTimeout 60s.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}
