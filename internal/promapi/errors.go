package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// errorType is Prometheus's errorType field.
type errorType string

// The error types Prometheus's API uses, with their statuses
// (web/api/v1 in prometheus/prometheus).
const (
	errorBadData     errorType = "bad_data"
	errorExec        errorType = "execution"
	errorTimeout     errorType = "timeout"
	errorCanceled    errorType = "canceled"
	errorInternal    errorType = "internal"
	errorUnavailable errorType = "unavailable"
	errorMethod      errorType = "method_not_allowed"
	errorNotFound    errorType = "not_found"
)

var errorStatus = map[errorType]int{
	errorBadData:     http.StatusBadRequest,
	errorExec:        http.StatusUnprocessableEntity,
	errorTimeout:     http.StatusServiceUnavailable,
	errorCanceled:    499, // as Prometheus: client closed request
	errorInternal:    http.StatusInternalServerError,
	errorUnavailable: http.StatusServiceUnavailable,
	errorMethod:      http.StatusMethodNotAllowed,
	errorNotFound:    http.StatusNotFound,
}

// apiError is an error with its Prometheus error type.
type apiError struct {
	typ errorType
	msg string
}

func (e *apiError) Error() string { return string(e.typ) + ": " + e.msg }

func badData(format string, args ...any) error {
	return &apiError{errorBadData, fmt.Sprintf(format, args...)}
}

// unsupported refuses what the mapping cannot answer truthfully.
func unsupported(format string, args ...any) error {
	return badData("not supported by sketchd: "+format+" (see docs/grafana.md)", args...)
}

// CodePartitionsUnavailable is the problem code (internal/api/codes.go)
// of a query refused because the instance does not cover some partition
// of the stream (*sketchd.PartitionsUnavailableError); the envelope
// carries it in "code", and the answer has Retry-After: RetryPartitions.
const CodePartitionsUnavailable = "partitions_unavailable"

// RetryPartitions is the Retry-After (seconds) of such a refusal: a
// restore of a partition takes seconds to minutes (docs/scale-out.md).
const RetryPartitions = "5"

// classify maps an error to its Prometheus type and the message shown;
// internal errors show a generic message (their details are logged).
func classify(err error) (errorType, string, bool) {
	var (
		ae *apiError
		pe *query.ParamError
		le *query.LimitError
	)
	switch {
	case errors.As(err, &ae):
		return ae.typ, ae.msg, false
	case errors.As(err, &pe):
		return errorBadData, pe.Error(), false
	case errors.As(err, &le):
		return errorExec, le.Error(), false
	case errors.Is(err, query.ErrBeforeSince): // an aggregate added by an alter, asked before its since
		return errorExec, err.Error(), false
	case errors.Is(err, context.DeadlineExceeded):
		return errorTimeout, "the query did not complete within its time limit", false
	case errors.Is(err, context.Canceled):
		return errorCanceled, "the query was canceled", false
	case errors.As(err, new(*sketchd.PartitionsUnavailableError)): // before ErrUnavailable, which it matches
		return errorUnavailable, err.Error(), false
	case errors.Is(err, sketchd.ErrUnavailable):
		return errorUnavailable, "the service cannot serve this request now (" + err.Error() + "); retry later", false
	}
	return errorInternal, "an internal error occurred (stored data may be unreadable); the server log has the details", true
}

// WriteRefusal answers a request under Prefix that the HTTP layer in front
// of the Handler refused (no token, overloaded, body too large, ...) in
// Prometheus's envelope, so that Grafana and promtool show the reason: the
// error type follows the status, and code is sketchd's problem code.
// Headers the caller set (WWW-Authenticate, Retry-After) stay.
func WriteRefusal(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, response{Status: "error", ErrorType: refusalType(status), Error: msg, Code: code})
}

// refusalType maps an HTTP status to Prometheus's error type. 401 and 403
// have none in Prometheus (it has no auth), so they are "unauthorized", as
// Thanos and Cortex answer behind their auth middleware.
func refusalType(status int) errorType {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "unauthorized"
	case status == http.StatusMethodNotAllowed:
		return errorMethod
	case status == http.StatusNotFound:
		return errorNotFound
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return errorTimeout
	case status == http.StatusUnprocessableEntity:
		return errorExec
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		return errorUnavailable
	case status >= 500:
		return errorInternal
	}
	return errorBadData
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	typ, msg, internal := classify(err)
	if internal {
		h.log.Error("prometheus API request failed", "path", r.URL.Path, "err", err)
	}
	res := response{Status: "error", ErrorType: typ, Error: msg}
	if errors.As(err, new(*sketchd.PartitionsUnavailableError)) {
		res.Code = CodePartitionsUnavailable
		w.Header().Set("Retry-After", RetryPartitions)
	}
	writeJSON(w, errorStatus[typ], res)
}
