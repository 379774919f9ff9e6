package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/sketchd/sketchd"
)

// deleteOptions reads DELETE /v1/streams/{stream}'s parameters:
// keep_events=true keeps the JetStream stream sketchd created.
func deleteOptions(r *http.Request) (sketchd.DeleteOptions, error) {
	var o sketchd.DeleteOptions
	for k, vs := range r.URL.Query() {
		if k != "keep_events" {
			return o, paramError(k, "unknown parameter (DELETE takes keep_events only)")
		}
		b, err := strconv.ParseBool(vs[len(vs)-1])
		if err != nil || len(vs) > 1 {
			return o, paramError(k, "want one of true or false")
		}
		o.KeepEvents = b
	}
	return o, nil
}

// bodyReadError is a request body that could not be read: cut off by the
// client (400 invalid_body) or not received within the server's read
// timeout (408 request_timeout). A body over the size limit stays an
// *http.MaxBytesError (413).
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

func (e *bodyReadError) problem() problem {
	var ne interface{ Timeout() bool }
	if errors.Is(e.err, os.ErrDeadlineExceeded) || (errors.As(e.err, &ne) && ne.Timeout()) {
		return newProblem(codeRequestTimeout, "the request body did not arrive within the server's read timeout")
	}
	if errors.Is(e.err, io.ErrUnexpectedEOF) {
		return newProblem(codeInvalidBody, "the request body was cut off before its declared length")
	}
	return newProblem(codeInvalidBody, "the request body could not be read: "+e.err.Error())
}

// readBody reads the whole body; its errors are *bodyReadError unless the
// size limit was passed (*http.MaxBytesError).
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err == nil {
		return b, nil
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, err
	}
	return nil, &bodyReadError{err}
}

// alterStream is PATCH /v1/streams/{stream}: a JSON StreamAlter.
func (s *server) alterStream(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/merge-patch+json") {
			s.writeError(w, r, &httpError{code: codeUnsupportedMedia,
				detail: "the body must be application/json or application/merge-patch+json, got " + strconv.Quote(ct)})
			return
		}
	}
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := sketchd.ParseAlterJSON(body)
	if err != nil {
		if len(fieldErrors(err)) == 0 {
			err = &bodyError{err}
		}
		s.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "stream")
	st, err := s.streams.Alter(r.Context(), name, a)
	if err != nil {
		s.writeError(w, r, streamError(name, err))
		return
	}
	// Cached windows are keyed by aggregate name: a name removed and added
	// again must not answer from the old one's cache.
	if f, ok := s.querier.(cacheForgetter); ok {
		f.Forget(st.ID)
	}
	s.writeJSON(w, r, http.StatusOK, newStreamJSON(&st))
}
