package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

const errorLevel = slog.LevelError

// requestIDKey is the context key of the request id.
type requestIDKey struct{}

// requestIDHeader is read from the request (when well-formed) and echoed in
// the response.
const requestIDHeader = "X-Request-Id"

// requestID honours a well-formed X-Request-Id (1-128 printable ASCII
// characters) or makes one (32 hex digits), and echoes it.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if !validRequestID(id) {
			var b [16]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(requestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// metrics are the HTTP metrics, labelled by chi route pattern (never the raw
// path) so their cardinality is bounded by the routes.
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	staleAnswers prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_http_requests_total",
			Help: "HTTP requests served, by chi route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sketchd_http_request_duration_seconds",
			Help:    "HTTP request latency, by chi route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. 16s
		}, []string{"route", "method"}),
		staleAnswers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_http_stale_answers_total",
			Help: "Answers served from an earlier commit (header Sketchd-Stale) while another request computed the newest.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.staleAnswers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}

// knownMethods bounds the method label.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// instrument recovers panics (answering 500 as a problem), records the
// metrics and logs one line per request.
func (s *server) instrument(m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
						panic(p)
					}
					s.log.Log(r.Context(), errorLevel, "panic",
						"request_id", requestIDFrom(r.Context()),
						"panic", fmt.Sprint(p),
						"stack", string(debug.Stack()))
					if ww.Status() == 0 {
						writeProblem(ww, r, newProblem(codeInternal,
							"an internal error occurred; the request id identifies it in the server log"))
					}
				}
				d := time.Since(start)
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil {
					if p := rc.RoutePattern(); p != "" {
						route = p
					}
				}
				method := r.Method
				if !knownMethods[method] {
					method = "other"
				}
				m.requests.WithLabelValues(route, method, fmt.Sprint(status)).Inc()
				m.duration.WithLabelValues(route, method).Observe(d.Seconds())
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelWarn
				}
				s.log.Log(r.Context(), level, "http request",
					"method", method,
					"route", route,
					"status", status,
					"duration", d,
					"bytes", ww.BytesWritten(),
					"request_id", requestIDFrom(r.Context()))
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// timeout bounds the request's context; handlers pass it down to Streams
// and Querier, and a deadline error becomes 504.
func (s *server) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.limits.Timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// admit runs a query when one of the Limits.MaxConcurrent slots is free
// within Limits.QueueWait, and answers 503 overloaded with Retry-After
// otherwise: an overloaded server sheds load quickly instead of queueing
// requests until they time out.
func (s *server) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.takeSlot(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
		tk := &slotTicket{held: true} // its lane (lanes.go)
		defer s.release(tk)
		next.ServeHTTP(w, r.WithContext(s.withTicket(r.Context(), tk)))
	})
}

// limitBody caps request bodies; reading past the cap fails with
// *http.MaxBytesError, which writeError answers with 413.
func (s *server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.limits.MaxBodyBytes {
			s.writeError(w, r, &http.MaxBytesError{Limit: s.limits.MaxBodyBytes})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// token levels.
const (
	tokenNone = iota
	tokenRead
	tokenAdmin
)

// tokenLevel compares the request's Bearer token with the configured ones
// in constant time. It never logs the token.
func (s *server) tokenLevel(r *http.Request) (int, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return tokenNone, nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return tokenNone, errors.New("malformed Authorization header: want Bearer <token>")
	}
	// Compare SHA-256 digests in constant time: subtle.ConstantTimeCompare
	// returns early on a length mismatch, digests always have the same
	// length, so the time taken says nothing about the tokens' lengths or
	// contents. Both comparisons always run, so timing does not say which
	// matched.
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	admin := subtle.ConstantTimeCompare(d[:], s.adminDigest[:])&s.adminSet == 1
	read := subtle.ConstantTimeCompare(d[:], s.readDigest[:])&s.readSet == 1
	switch {
	case admin:
		return tokenAdmin, nil
	case read:
		return tokenRead, nil
	}
	return tokenNone, errors.New("invalid token")
}

// authHint says what to send; it ends every 401's detail.
const authHint = "send the header Authorization: Bearer <token> (curl -H 'Authorization: Bearer <token>'), with the token sketchd was started with (--read-token, or --admin-token for changes)"

func unauthorized(detail string) error {
	return &httpError{code: codeUnauthorized, detail: detail + "; " + authHint}
}

// authRead requires the read (or admin) token when a read token is set.
func (s *server) authRead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.readSet == 0 {
			next.ServeHTTP(w, r)
			return
		}
		lvl, err := s.tokenLevel(r)
		switch {
		case err != nil:
			s.writeError(w, r, unauthorized(err.Error()))
		case lvl == tokenNone:
			s.writeError(w, r, unauthorized("a Bearer token is required"))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// authAdmin requires the admin token when one is set.
func (s *server) authAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.adminSet == 0 {
			next.ServeHTTP(w, r)
			return
		}
		lvl, err := s.tokenLevel(r)
		switch {
		case err != nil:
			s.writeError(w, r, unauthorized(err.Error()))
		case lvl == tokenNone:
			s.writeError(w, r, unauthorized("the admin Bearer token is required"))
		case lvl == tokenRead:
			s.writeError(w, r, &httpError{code: codeForbidden, detail: "the read token does not allow changes; use the admin token"})
		default:
			next.ServeHTTP(w, r)
		}
	})
}
