package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/promapi"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// problemTypeBase prefixes the code to form a problem's type URI.
const problemTypeBase = "https://sketchd.dev/problems/"

// problem is an RFC 9457 problem detail with sketchd's extension members.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`

	Parameter string       `json:"parameter,omitempty"` // invalid_parameter
	Limit     string       `json:"limit,omitempty"`     // query_too_large
	Max       *int64       `json:"max,omitempty"`
	Got       *int64       `json:"got,omitempty"`
	Errors    []fieldError `json:"errors,omitempty"` // invalid_stream_spec

	MissingPartitions []int `json:"missing_partitions,omitempty"` // partitions_unavailable

	RetainedFrom string `json:"retained_from,omitempty"` // pane_expired: the first pane start imports are accepted into
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// paramError is a query parameter that does not parse or does not fit; it
// maps like *query.ParamError.
func paramError(param, format string, args ...any) error {
	return &query.ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// httpError is an error the API raises itself with a fixed code (auth,
// media type, body).
type httpError struct {
	code   string // its status is problemCodes'
	detail string
}

func (e *httpError) Error() string { return e.code + ": " + e.detail }

// bodyError is a request body that does not decode.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// problemFor maps an error to its problem. It is the one place that decides
// status codes. internal is set for errors whose details must not leak
// (they are logged instead).
func problemFor(err error) (p problem, internal bool) {
	var (
		pe  *query.ParamError
		le  *query.LimitError
		he  *httpError
		be  *bodyError
		mbe *http.MaxBytesError
		lim *sketchd.LimitError
		bre *bodyReadError
		pue *sketchd.PartitionsUnavailableError
		ee  *store.ExpiredError
		ice *store.ImportConflictError
	)
	switch {
	case errors.As(err, &he):
		p = newProblem(he.code, he.detail)
	case errors.As(err, &lim):
		p = newProblem(codeLimitReached, lim.Error())
		p.Limit, p.Max, p.Got = lim.Limit, new(int64(lim.Max)), new(int64(lim.Got))
	case errors.As(err, &bre):
		p = bre.problem()
	case errors.As(err, &mbe):
		p = newProblem(codeBodyTooLarge,
			"the request body is larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
	case errors.Is(err, sketchd.ErrNotFound):
		p = newProblem(codeStreamNotFound, err.Error())
	case errors.Is(err, query.ErrUnknownAggregate):
		p = newProblem(codeAggregateNotFound, err.Error())
	case errors.Is(err, query.ErrBeforeSince):
		p = newProblem(codeBeforeAggregate, err.Error())
		p.Parameter = "from"
	case errors.As(err, &ee):
		p = newProblem(codePaneExpired, fmt.Sprintf(
			"the pane starting %s is before the stream's retained range, which starts at %s: reads never return a pane older than the retention, so imports are accepted into panes from %s on",
			rfc3339(ee.Start), rfc3339(ee.From), rfc3339(ee.From)))
		p.Parameter, p.RetainedFrom = "pane", rfc3339(ee.From)
	case errors.As(err, &ice):
		p = newProblem(codeImportIDConflict, importConflictDetail(ice))
	case errors.As(err, &pe):
		code := codeInvalidParameter
		if errors.Is(err, query.ErrAmbiguousFilter) {
			code = codeAmbiguousFilter
		}
		p = newProblem(code, pe.Error())
		p.Parameter = pe.Param
	case errors.As(err, &le):
		p = newProblem(codeQueryTooLarge, le.Error())
		p.Limit, p.Max, p.Got = le.Limit, &le.Max, &le.Got
	case errors.Is(err, sketchd.ErrExists):
		p = newProblem(codeStreamExists, err.Error())
	case len(fieldErrors(err)) > 0:
		p = newProblem(codeInvalidSpec, "the stream spec is invalid; see errors")
		p.Errors = fieldErrors(err) // every one, not just the first
	case errors.As(err, &be):
		p = newProblem(codeInvalidBody, be.Error())
	case errors.Is(err, query.ErrBusy):
		p = newProblem(codeOverloaded, err.Error())
	case errors.As(err, &pue): // before ErrUnavailable, which it matches
		p = newProblem(codePartitionsUnavailable, pue.Error())
		p.MissingPartitions = pue.Missing
	case errors.Is(err, sketchd.ErrUnavailable):
		p = newProblem(codeUnavailable, "the service cannot serve this request now ("+err.Error()+"); retry later")
	case errors.Is(err, context.DeadlineExceeded):
		p = newProblem(codeTimeout, "the request did not complete within its time limit")
	case errors.Is(err, context.Canceled):
		p = newProblem(codeUnavailable, "the request was canceled")
	case isCorrupt(err):
		// Logged with its details (which value, why) like an internal
		// error; the client learns only that its data is unreadable.
		return newProblem(codeCorrupt,
			"stored data this request reads is corrupt (checksum or format mismatch); other keys and time ranges are unaffected; the request id identifies the value in the server log"), true
	default:
		return newProblem(codeInternal, "an internal error occurred; the request id identifies it in the server log"), true
	}
	return p, false
}

// importConflictDetail says what an import id was used for before.
func importConflictDetail(e *store.ImportConflictError) string {
	if e.Aggregate != "" {
		return fmt.Sprintf("import id %q already imported aggregate %q into this pane from another body (or format): a retry sends the same body; another import needs another id", e.ID, e.Aggregate)
	}
	key := fmt.Sprintf("%q", e.Key)
	if vals, err := sketchd.DecodeKey(e.Key); err == nil {
		key = fmt.Sprintf("%q", vals)
	}
	return fmt.Sprintf("import id %q names the import into the pane starting %s of the key with values %s: an id names one pane's import (its aggregates one POST each); use another id for another pane",
		e.ID, rfc3339(e.Start), key)
}

// isCorrupt reports a stored value that fails its checksum or does not
// decode: a pane value (sketchd.ErrCorrupt, which the store's errors match)
// or a sketch blob in it (sketch.ErrCorrupt, or sketch.ErrVersion for a
// format this build does not read).
func isCorrupt(err error) bool {
	return errors.Is(err, sketchd.ErrCorrupt) || errors.Is(err, sketch.ErrCorrupt) || errors.Is(err, sketch.ErrVersion)
}

// newProblem returns the problem of code, with the status and title of
// problemCodes.
func newProblem(code, detail string) problem {
	c := problemCodes[code]
	return problem{Type: problemTypeBase + code, Title: c.title, Status: c.status, Detail: detail, Code: code}
}

// fieldErrors collects every *sketchd.FieldError in err's tree.
func fieldErrors(err error) []fieldError {
	var out []fieldError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*sketchd.FieldError); ok { //nolint:errorlint // walking the tree by hand
			out = append(out, fieldError{Field: fe.Field, Message: fe.Msg})
			return
		}
		switch u := e.(type) { //nolint:errorlint // walking the tree by hand
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// writeError writes err as a problem. Internal errors are logged with the
// request id and answered without their details.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p, internal := problemFor(err)
	if internal {
		s.log.Log(r.Context(), errorLevel, "request failed",
			"request_id", requestIDFrom(r.Context()),
			"method", r.Method,
			"path", r.URL.Path,
			"error", err.Error())
	}
	switch p.Code {
	case codeUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="sketchd"`)
	case codeOverloaded:
		w.Header().Set("Retry-After", "1")
	case codePartitionsUnavailable:
		w.Header().Set("Retry-After", promapi.RetryPartitions)
	}
	writeProblem(w, r, p)
}

// maxEcho bounds what a problem repeats of the request (instance, and names
// quoted in detail): a hostile path is not echoed back in full.
const maxEcho = 512

func truncate(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho] + "..."
}

// writeProblem writes p with the request's path and id. Under the
// Prometheus API's prefix it writes Prometheus's error envelope instead,
// which is what Grafana and promtool read.
func writeProblem(w http.ResponseWriter, r *http.Request, p problem) {
	p.Instance = truncate(r.URL.Path)
	p.Detail = truncate(p.Detail)
	p.Parameter = truncate(p.Parameter)
	p.RequestID = requestIDFrom(r.Context())
	if r.URL.Path == promapi.Prefix || strings.HasPrefix(r.URL.Path, promapi.Prefix+"/") {
		msg := p.Title
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Del("Content-Length")
		promapi.WriteRefusal(w, p.Status, p.Code, msg)
		return
	}
	b, err := marshalJSON(r, p)
	if err != nil { // cannot happen: every member is a plain value
		b = []byte(`{"type":"about:blank","status":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, newProblem(codeNotFound, "no route for "+r.URL.Path))
}

// methodNotAllowed answers 405 with the Allow header chi's default handler
// would set (a custom handler does not get the allowed methods).
func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		if s.mux.Match(chi.NewRouteContext(), m, r.URL.Path) {
			allowed = append(allowed, m)
			if m == http.MethodGet {
				allowed = append(allowed, http.MethodHead) // middleware.GetHead
			}
		}
	}
	for _, m := range allowed {
		w.Header().Add("Allow", m)
	}
	writeProblem(w, r, newProblem(codeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path))
}
