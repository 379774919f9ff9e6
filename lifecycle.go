package sketchd

import "fmt"

// DeleteOptions say what deleting a stream removes besides its panes,
// checkpoint, spec and JetStream consumer.
type DeleteOptions struct {
	// KeepEvents keeps the JetStream stream that sketchd created for the
	// stream (and the raw events in it). By default it is deleted; a
	// JetStream stream sketchd did not create is never deleted.
	KeepEvents bool
}

// LimitError is a request refused because it would pass one of the
// instance's limits (streams per instance, aggregates per stream).
type LimitError struct {
	Limit string // the setting: "max_streams", "max_aggregates"
	Max   int
	Got   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit %s reached: at most %d, this request needs %d", e.Limit, e.Max, e.Got)
}
