package query

import "encoding/binary"

// AnswerKey names qu's result against t for callers that cache what they
// make of it (the API caches rendered answers): two queries with the same
// key get equal results. It is the result cache's key, so it holds the
// stream's last commit, and a commit changes every key; so do a move of
// the stream's rollup tier cursors and, for a range that starts before
// it, of a retention horizon (appendRetained). ok is false when
// results are not cached (no result cache, nothing committed yet, a partition
// not covered) or qu
// does not compile to a geometry.
func (q *Querier) AnswerKey(t Target, qu Query) (key string, ok bool) {
	if !q.keysAnswers(t) {
		return "", false
	}
	g, err := newGeometry(&t.Spec, qu, q.opts.MaxWindows)
	if err != nil {
		return "", false
	}
	return withGeneration(q.resultKey(t, qu, g), q.gens.get(t.ID)), true
}

// QuestionKey names qu against t's stream whatever its commit: AnswerKey
// without the last commit and the committed watermark. Answers under equal
// question keys answer the same question at different commits (and never
// across an alter or import: the stream's generation is in it).
func (q *Querier) QuestionKey(t Target, qu Query) (key string, ok bool) {
	if t.LastCommit == 0 {
		return "", false
	}
	t.LastCommit, t.Watermark = -1, 0
	return q.AnswerKey(t, qu)
}

// MovingQuestionKey names qu's question against t's stream at its
// generation, without a range or a commit: its shape (the aggregate, where,
// group_by and the other filters: appendShape) only. It is for callers whose
// own words for a query (the API's query string, which holds neither the
// stream nor the aggregate: they are in the path) name a range that moves
// with the clock ("the last hour"): that question's answers at earlier
// commits and earlier nows answer it too. ok is false when AnswerKey's is
// for want of a result cache, a commit or a covered partition.
func (q *Querier) MovingQuestionKey(t Target, qu Query) (key string, ok bool) {
	if !q.keysAnswers(t) {
		return "", false
	}
	b := append(binary.AppendUvarint([]byte("moving\x00"), uint64(t.ID)), 0)
	return withGeneration(string(appendShape(b, qu)), q.gens.get(t.ID)), true
}

// keysAnswers reports whether t's answers are named for caching: results
// are cached, the stream has committed and every partition is covered.
func (q *Querier) keysAnswers(t Target) bool {
	return q.results != nil && t.LastCommit != 0 && len(t.Uncovered) == 0
}
