package ingest

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// checkRetention refuses a JetStream stream whose retention is interest or
// work-queue. sketchd resumes from its own checkpoint, not from the
// consumer's ack floor, and a consumer reset (in place, or delete +
// create) moves the ack floor to just below its start before the intake
// has committed what it holds: with such a retention the server may remove
// those messages at the reset, and a crash before the next commit would
// lose them (docs/reliability.md). Only limits retention keeps every
// message until the stream's own limits remove it. A stream sketchd
// creates always has limits retention.
func checkRetention(have jetstream.StreamConfig) error {
	if have.Retention == jetstream.LimitsPolicy {
		return nil
	}
	return &sketchd.FieldError{Field: "jetstream_stream", Msg: fmt.Sprintf(
		"JetStream stream %q has %s retention: sketchd reads only streams with limits retention (a consumer reset moves the ack floor before sketchd commits, and %s retention could then remove messages sketchd has not committed); bind a stream with limits retention, or let sketchd create one",
		have.Name, retentionName(have.Retention), retentionName(have.Retention))}
}

// retentionName is the retention as the NATS CLI and config spell it.
func retentionName(r jetstream.RetentionPolicy) string {
	switch r {
	case jetstream.InterestPolicy:
		return "interest"
	case jetstream.WorkQueuePolicy:
		return "workqueue"
	}
	return r.String()
}
