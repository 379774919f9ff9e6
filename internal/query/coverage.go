package query

import "github.com/sketchd/sketchd"

// covered refuses a query of a target with partitions this instance does
// not cover (*sketchd.PartitionsUnavailableError, which matches
// sketchd.ErrUnavailable): refused, never partial (docs/scale-out.md
// §2.5). Every entry point checks it before reading (Query, QueryMulti,
// KeysFiltered), and AnswerKey names no cached answer for such a target.
func (t *Target) covered() error {
	if len(t.Uncovered) == 0 {
		return nil
	}
	return &sketchd.PartitionsUnavailableError{Stream: t.Spec.Name, Missing: t.Uncovered, Count: max(t.Spec.Partitions, 1)}
}
