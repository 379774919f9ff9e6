package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/sketchd/sketchd/internal/promapi"
	"github.com/sketchd/sketchd/internal/query"
)

// promAnswers serves the answers of the Prometheus API's query endpoints
// (promapi.AnswerPaths) as the aggregate queries are: the answer cache,
// shared computations and lazy admission of s.answer.
type promAnswers struct{ s *server }

var _ promapi.Answers = promAnswers{}

func (a promAnswers) Key(t query.Target, qu query.Query) (string, bool) {
	ak, ok := a.s.querier.(answerKeyer)
	if !ok || a.s.answers == nil {
		return "", false
	}
	return ak.AnswerKey(t, qu)
}

// Serve writes the answer, or the API's own refusal (overloaded) in
// Prometheus's envelope (writeProblem); other errors are promapi's to
// write.
func (a promAnswers) Serve(w http.ResponseWriter, r *http.Request, key string, cacheable bool, compute func() ([]byte, error)) error {
	// No question: a Prometheus client is not told an answer is stale.
	body, _, err := a.s.answer(r, key, "", cacheable, func(context.Context) ([]byte, error) { return compute() })
	var he *httpError
	if errors.As(err, &he) {
		a.s.writeError(w, r, err)
		return nil
	}
	if err != nil {
		return err
	}
	writeBody(w, body)
	return nil
}

// promQuerier is s.querier for promapi, which only reads its results once:
// Query answers through s.queryRead.
type promQuerier struct {
	Querier
	s *server
}

func (q promQuerier) Query(ctx context.Context, t query.Target, qu query.Query) (*query.Result, error) {
	return q.s.queryRead(ctx, t, qu)
}

// promAdmission is the admission of a promapi path: lazy for the answers
// promAnswers serves, a slot up front for the others.
func (s *server) promAdmission(path string) func(http.Handler) http.Handler {
	if slices.Contains(promapi.AnswerPaths, path) {
		return s.admitLazy
	}
	return s.admit
}
