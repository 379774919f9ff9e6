package query

import (
	"fmt"
	"time"

	"github.com/sketchd/sketchd"
)

// SinceError is a query of an aggregate an alter added (Aggregate.Since)
// over panes from before it: those panes hold nothing for it, and an
// answer of 0 there would be a lie. It wraps ErrBeforeSince.
type SinceError struct {
	Aggregate string
	Since     time.Time // the first pane start the aggregate covers
	From      time.Time // the first pane start the query reads
}

func (e *SinceError) Error() string {
	return fmt.Sprintf("aggregate %q was added by an alter and holds every event from %s on; this query reads panes from %s: ask from %s or later (or re-add it with backfill)",
		e.Aggregate, e.Since.Format(time.RFC3339), e.From.Format(time.RFC3339), e.Since.Format(time.RFC3339))
}

func (e *SinceError) Unwrap() error { return ErrBeforeSince }

// checkSince refuses a query whose first pane starts before its aggregate's
// Since.
func checkSince(spec *sketchd.Stream, name string, g geometry) error {
	since := spec.Aggregates[name].Since
	if since == nil || g.scanFrom() >= since.UnixNano() {
		return nil
	}
	return &SinceError{Aggregate: name, Since: since.UTC(), From: time.Unix(0, g.scanFrom()).UTC()}
}
