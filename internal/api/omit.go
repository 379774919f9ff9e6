package api

import (
	"net/url"
	"strconv"

	"github.com/sketchd/sketchd/internal/query"
)

// omit_empty: a series over a long range with many groups is mostly empty
// windows (events 0, answers of an empty sketch). With omit_empty=true the
// answer leaves them out, and the groups left with no window; the default
// (false) keeps every window, so a series has one window per step.

// parseOmitEmpty reads omit_empty: true or false (strconv.ParseBool's
// spellings), default false.
func parseOmitEmpty(v url.Values) (bool, error) {
	vals, ok := v["omit_empty"]
	if !ok {
		return false, nil
	}
	if len(vals) != 1 {
		return false, paramError("omit_empty", "given %d times, want once", len(vals))
	}
	b, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, paramError("omit_empty", "want true or false, got %q", truncate(vals[0]))
	}
	return b, nil
}

// omitWindow reports whether w is left out of the answer: omit_empty and no
// event in it.
func omitWindow(w *query.Window, p *queryParams) bool {
	return p.omitEmpty && w.Events == 0
}
