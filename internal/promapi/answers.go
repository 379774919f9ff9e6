package promapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sketchd/sketchd/internal/query"
)

// Answers serves the answers of the query endpoints (AnswerPaths) the way
// the API serves its own aggregate queries (internal/api): from its cache
// of rendered answers, from a computation of the same answer already under
// way, or by computing it after taking a query slot. A router admits
// AnswerPaths lazily for it: an answer that needs no computation takes no
// slot.
type Answers interface {
	// Key is the cache key of the result of qu over t (its stream's last
	// commit among it), or false when such results are not cached.
	Key(t query.Target, qu query.Query) (string, bool)
	// Serve writes the answer of key: cached, shared with a computation
	// under way, or from compute (cached when cacheable). It writes the
	// body, or a refusal of its own (overloaded), and returns nil; it
	// returns an error of compute unwritten, for the handler to write in
	// Prometheus's envelope.
	Serve(w http.ResponseWriter, r *http.Request, key string, cacheable bool, compute func() ([]byte, error)) error
}

// AnswerPaths are the Paths whose answers go through Config.Answers.
var AnswerPaths = []string{"/query", "/query_range"}

// answer is the data of a query answer still to compute: what the query
// endpoints return to endpoint, which serves it through Config.Answers.
type answer struct {
	key       string
	cacheable bool
	compute   func() (any, []string, error) // the data and its warnings
}

// lazyAnswer is the answer of plan over sp, rendered by render: its key
// holds the query, the evaluated span and the key of every target's
// result, so a commit to any stream it reads changes it.
func (h *Handler) lazyAnswer(r *http.Request, p *planned, sp evalSpan, render func([]series) any) *answer {
	a := &answer{compute: func() (any, []string, error) {
		ss, warnings, err := h.run(r.Context(), p, sp)
		if err != nil {
			return nil, nil, err
		}
		return render(ss), warnings, nil
	}}
	if h.answers == nil {
		return a
	}
	var b strings.Builder
	fmt.Fprintf(&b, "prom\x00%s\x00%q\x00%d\x00%d\x00%d\x00%d", r.URL.Path, r.Form.Get("query"), sp.start, sp.end, sp.step, sp.lookback)
	for i := range p.targets {
		k, ok := h.answers.Key(query.TargetOf(p.targets[i].status), p.queries[i])
		if !ok {
			return a
		}
		b.WriteString("\x00")
		b.WriteString(k)
	}
	a.key, a.cacheable = b.String(), true
	return a
}

// serve writes a: through Config.Answers, or computed here without it;
// with the warnings of planning it and then those of its computation.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, a *answer, warnings []string) {
	compute := func() ([]byte, error) {
		data, more, err := a.compute()
		if err != nil {
			return nil, err
		}
		return encode(response{Status: "success", Data: data, Warnings: append(slices.Clip(warnings), more...)})
	}
	if h.answers == nil {
		body, err := compute()
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		writeBody(w, http.StatusOK, body)
		return
	}
	if err := h.answers.Serve(w, r, a.key, a.cacheable, compute); err != nil {
		h.writeError(w, r, err)
	}
}
