package promapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/query"
)

// Streams lists the streams. The API's stream registry implements it.
type Streams interface {
	List(ctx context.Context) ([]sketchd.StreamStatus, error)
}

// Querier runs queries over stored panes. *query.Querier implements it.
// The handler only reads a result of Query, once, and keeps nothing of it
// (so a Querier may answer with query.Querier.QueryShared).
type Querier interface {
	Query(ctx context.Context, t query.Target, q query.Query) (*query.Result, error)
	Keys(ctx context.Context, t query.Target, from, to int64, where map[string][]string, limit int) ([]map[string]string, bool, error)
}

var _ Querier = (*query.Querier)(nil)

// Options bound what one request may ask for. Zero values take the
// defaults of DefaultOptions.
type Options struct {
	// MaxRange is the widest range a query, series or label request may
	// span. Default 366 days.
	MaxRange time.Duration
	// MaxSamples bounds the samples of one query answer, over all series.
	// Default 100,000.
	MaxSamples int
	// MaxPoints bounds the points per series of a range query,
	// (end - start) / step, as Prometheus does. Default 11,000.
	MaxPoints int
	// MaxSeries bounds the series of a series request and the values of a
	// label values request. Default 10,000.
	MaxSeries int
	// MetaRange is the range of series, labels and label values requests
	// without start: [end - MetaRange, end). Default 24h.
	MetaRange time.Duration
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{MaxRange: 366 * 24 * time.Hour, MaxSamples: 100_000, MaxPoints: 11_000,
		MaxSeries: 10_000, MetaRange: 24 * time.Hour}
}

// Config holds the handler's dependencies.
type Config struct {
	Streams Streams // required
	Querier Querier // required
	// Now is the clock for default times. nil = time.Now.
	Now func() time.Time
	// Logger receives the details of internal errors. nil = discard.
	Logger  *slog.Logger
	Options Options
	// Answers serves the answers of AnswerPaths (cache, shared
	// computations, admission). nil = every answer is computed.
	Answers Answers
}

// Prefix is where the Handler's paths are mounted.
const Prefix = "/api/v1"

// Paths are the endpoints the Handler serves, under Prefix, for GET and
// POST alike. A router that mounts the Handler routes these.
var Paths = []string{"/query", "/query_range", "/series", "/labels", "/label/{name}/values", "/metadata", "/status/buildinfo"}

// Handler serves /api/v1/... . It is safe for concurrent use.
type Handler struct {
	streams Streams
	querier Querier
	answers Answers
	now     func() time.Time
	log     *slog.Logger
	opts    Options
	parser  parser.Parser
	mux     *http.ServeMux
}

// New returns the handler; the paths it serves start with /api/v1/.
func New(cfg Config) *Handler {
	h := &Handler{
		streams: cfg.Streams, querier: cfg.Querier, answers: cfg.Answers, now: cfg.Now, log: cfg.Logger,
		opts:   defaults.Fill(cfg.Options, DefaultOptions()),
		parser: parser.NewParser(parser.Options{}),
		mux:    http.NewServeMux(),
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	routes := map[string]func(*http.Request) (any, []string, error){
		"/query":               h.instantQuery,
		"/query_range":         h.rangeQuery,
		"/series":              h.series,
		"/labels":              h.labelNames,
		"/label/{name}/values": h.labelValues,
		"/metadata":            h.metadata,
		"/status/buildinfo":    h.buildInfo,
	}
	for _, p := range Paths {
		h.mux.Handle(Prefix+p, h.endpoint(routes[p]))
	}
	return h
}

// ServeHTTP serves the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// endpoint adapts fn: GET (query string) and POST (form body) both, as
// Prometheus does; the answer or error in Prometheus's JSON envelope.
func (h *Handler) endpoint(fn func(*http.Request) (any, []string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, POST")
			h.writeError(w, r, &apiError{errorMethod, "method " + r.Method + " not allowed; use GET or POST"})
			return
		}
		if err := r.ParseForm(); err != nil {
			h.writeError(w, r, badData("invalid parameters: %v", err))
			return
		}
		data, warnings, err := fn(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if a, ok := data.(*answer); ok {
			h.serve(w, r, a, warnings)
			return
		}
		writeJSON(w, http.StatusOK, response{Status: "success", Data: data, Warnings: warnings})
	})
}

// response is Prometheus's JSON envelope.
type response struct {
	Status    string    `json:"status"`
	Data      any       `json:"data,omitempty"`
	ErrorType errorType `json:"errorType,omitempty"`
	Error     string    `json:"error,omitempty"`
	Warnings  []string  `json:"warnings,omitempty"`
	// Code is sketchd's problem code (docs/api.md) on refusals that come
	// from the HTTP layer in front of the handler: auth, admission, limits.
	Code string `json:"code,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v response) {
	b, err := encode(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = encode(response{Status: "error", ErrorType: errorInternal, Error: "encode response: " + err.Error()})
	}
	writeBody(w, status, b)
}

// encode is the body of v.
func encode(v response) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// buildInfo answers /api/v1/status/buildinfo, which Grafana reads to tell
// Prometheus from Mimir: no features means Prometheus (no ruler API).
// version is the Prometheus API version this package follows.
func (h *Handler) buildInfo(*http.Request) (any, []string, error) {
	return map[string]any{
		"version":   compatVersion,
		"revision":  "sketchd",
		"branch":    "",
		"buildUser": "",
		"buildDate": "",
		"goVersion": runtime.Version(),
	}, nil, nil
}

// compatVersion is the Prometheus release whose HTTP API this subset
// follows (the query, series, label and metadata endpoints as of 2.40).
const compatVersion = "2.40.0"
