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
)

var errorStatus = map[errorType]int{
	errorBadData:     http.StatusBadRequest,
	errorExec:        http.StatusUnprocessableEntity,
	errorTimeout:     http.StatusServiceUnavailable,
	errorCanceled:    499, // as Prometheus: client closed request
	errorInternal:    http.StatusInternalServerError,
	errorUnavailable: http.StatusServiceUnavailable,
	errorMethod:      http.StatusMethodNotAllowed,
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
	case errors.Is(err, context.DeadlineExceeded):
		return errorTimeout, "the query did not complete within its time limit", false
	case errors.Is(err, context.Canceled):
		return errorCanceled, "the query was canceled", false
	case errors.Is(err, sketchd.ErrUnavailable):
		return errorUnavailable, "the service cannot serve this request now; retry later", false
	}
	return errorInternal, "an internal error occurred (stored data may be unreadable); the server log has the details", true
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	typ, msg, internal := classify(err)
	if internal {
		h.log.Error("prometheus API request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, errorStatus[typ], response{Status: "error", ErrorType: typ, Error: msg})
}
