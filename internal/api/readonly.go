package api

import (
	"context"

	"github.com/sketchd/sketchd/internal/query"
)

// sharedQuerier is the part of *query.Querier that answers with results
// to be read once (query.Querier.QueryShared): the handlers that render a
// result into bytes and drop it use it, saving the copy of every cached
// window's sketches. A Querier without it is asked with Query.
type sharedQuerier interface {
	QueryShared(ctx context.Context, t query.Target, q query.Query) (*query.Result, error)
	QueryMultiShared(ctx context.Context, t query.Target, q query.Query, aggregates []string) ([]*query.Result, error)
}

// queryRead answers qu for a caller that only reads the result once.
func (s *server) queryRead(ctx context.Context, t query.Target, qu query.Query) (*query.Result, error) {
	if sq, ok := s.querier.(sharedQuerier); ok {
		return sq.QueryShared(ctx, t, qu)
	}
	return s.querier.Query(ctx, t, qu)
}

// queryMultiRead answers names for a caller that only reads the results
// once.
func (s *server) queryMultiRead(ctx context.Context, t query.Target, qu query.Query, names []string) ([]*query.Result, error) {
	if sq, ok := s.querier.(sharedQuerier); ok {
		return sq.QueryMultiShared(ctx, t, qu, names)
	}
	return s.querier.QueryMulti(ctx, t, qu, names)
}
