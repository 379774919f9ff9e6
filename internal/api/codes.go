package api

import (
	"net/http"

	"github.com/sketchd/sketchd/internal/promapi"
)

// Problem codes. They are stable: clients may switch on them.
const (
	codeStreamNotFound    = "stream_not_found"
	codeAggregateNotFound = "aggregate_not_found"
	codeInvalidParameter  = "invalid_parameter"
	codeAmbiguousFilter   = "ambiguous_filter"
	codeQueryTooLarge     = "query_too_large"
	codeStreamExists      = "stream_exists"
	codeInvalidSpec       = "invalid_stream_spec"
	codeInvalidBody       = "invalid_body"
	codeUnauthorized      = "unauthorized"
	codeForbidden         = "forbidden"
	codeUnavailable       = "unavailable"
	codeNotReady          = "not_ready"
	codeTimeout           = "timeout"
	codeBodyTooLarge      = "body_too_large"
	codeUnsupportedMedia  = "unsupported_media_type"
	codeNotFound          = "not_found"
	codeMethodNotAllowed  = "method_not_allowed"
	codeInternal          = "internal"
	codeCorrupt           = "corrupt_data"
	codeOverloaded        = "overloaded"
	codeLimitReached      = "limit_reached"
	codeRequestTimeout    = "request_timeout"
	codePaneOpen          = "pane_open"
	codeImportIDConflict  = "import_id_conflict"
	codePaneExpired       = "pane_expired"
	codeBeforeAggregate   = "before_aggregate"
	// The Prometheus API's envelope carries it too (promapi cannot import
	// this package).
	codePartitionsUnavailable = promapi.CodePartitionsUnavailable
)

// problemCode is what a code means on the wire: its HTTP status and title.
type problemCode struct {
	status int
	title  string
}

// problemCodes is the one table of the API's problem codes. A code has one
// status, which newProblem takes from here. openapi.json (the Problem
// schema's code enum and the response descriptions) and docs/api.md's
// error table list exactly these codes with these statuses
// (TestProblemCodesDocumented, TestOpenAPIProblemCodes).
var problemCodes = map[string]problemCode{
	codeInvalidParameter:      {http.StatusBadRequest, "Invalid query parameter"},
	codeAmbiguousFilter:       {http.StatusBadRequest, "Filter matches nothing as written"},
	codeInvalidSpec:           {http.StatusBadRequest, "Invalid stream spec"},
	codeInvalidBody:           {http.StatusBadRequest, "Invalid request body"},
	codeUnauthorized:          {http.StatusUnauthorized, "Unauthorized"},
	codeForbidden:             {http.StatusForbidden, "Forbidden"},
	codeStreamNotFound:        {http.StatusNotFound, "Stream not found"},
	codeAggregateNotFound:     {http.StatusNotFound, "Aggregate not found"},
	codeNotFound:              {http.StatusNotFound, "Not found"},
	codeMethodNotAllowed:      {http.StatusMethodNotAllowed, "Method not allowed"},
	codeStreamExists:          {http.StatusConflict, "Stream already exists"},
	codePaneOpen:              {http.StatusConflict, "Pane still open"},
	codeImportIDConflict:      {http.StatusConflict, "Import id used for another import"},
	codeBodyTooLarge:          {http.StatusRequestEntityTooLarge, "Request body too large"},
	codeUnsupportedMedia:      {http.StatusUnsupportedMediaType, "Unsupported media type"},
	codeQueryTooLarge:         {http.StatusUnprocessableEntity, "Query too large"},
	codeLimitReached:          {http.StatusUnprocessableEntity, "Instance limit reached"},
	codeBeforeAggregate:       {http.StatusUnprocessableEntity, "Range starts before the aggregate existed"},
	codePaneExpired:           {http.StatusUnprocessableEntity, "Pane before the retained range"},
	codeRequestTimeout:        {http.StatusRequestTimeout, "Request body not received in time"},
	codeCorrupt:               {http.StatusInternalServerError, "Stored data is corrupt"},
	codeInternal:              {http.StatusInternalServerError, "Internal server error"},
	codeUnavailable:           {http.StatusServiceUnavailable, "Service unavailable"},
	codeNotReady:              {http.StatusServiceUnavailable, "Not ready"},
	codeOverloaded:            {http.StatusServiceUnavailable, "Too many queries"},
	codePartitionsUnavailable: {http.StatusServiceUnavailable, "Partitions not covered"},
	codeTimeout:               {http.StatusGatewayTimeout, "Request timed out"},
}
