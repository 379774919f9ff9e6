package sketchd

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Emit is one push target of a stream: each window of Window width is
// published to Subject, as JSON, once it closes (Trigger), one message per
// aggregate and group, with the same members as the query API's window
// answer (see docs/emit.md).
type Emit struct {
	// Subject is the NATS subject to publish to: a literal subject (no
	// wildcards) that no stream reads. Default "sketchd.emit." + stream name.
	Subject string `json:"subject" yaml:"subject"`
	// JetStream publishes through JetStream with a Nats-Msg-Id header, so
	// that the target stream drops a message published again after a crash
	// (true, the default; a JetStream stream "SKETCHD_EMIT_" + NAME is
	// created for the subject when none captures it); false publishes on
	// core NATS, at least once.
	JetStream *bool `json:"jetstream,omitempty" yaml:"jetstream,omitempty"`
	// Aggregates lists the aggregates to publish; empty: all of them.
	Aggregates []string `json:"aggregates,omitempty" yaml:"aggregates,omitempty"`
	// GroupBy lists the dimensions kept, a subset of the stream's group_by:
	// one message per group. Absent (null): the stream's group_by; [] merges
	// every key of the window into one message.
	GroupBy []string `json:"group_by" yaml:"group_by"`
	// Window is the width of the published windows: a multiple of the
	// granularity, at most 24h. Default the granularity.
	Window Duration `json:"window" yaml:"window"`
	// Trigger says when a window is published: EmitOnClose (the default)
	// once the committed watermark passes its end, then again for every
	// change late events make, and a last time once it is final;
	// EmitOnFinal only once, when it is final.
	Trigger EmitTrigger `json:"trigger" yaml:"trigger"`
	// Params are the kind parameters of the query API (q, cdf, rank, trim,
	// top, item, n, seed), as in a query string ("0.5,0.99"): each applies
	// to the aggregates of its kinds.
	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
}

// EmitTrigger says when an emit target publishes a window.
type EmitTrigger string

// The emit triggers.
const (
	EmitOnClose EmitTrigger = "close"
	EmitOnFinal EmitTrigger = "final"
)

// MaxEmits bounds the emit targets of one stream.
const MaxEmits = 8

// UsesJetStream reports whether the target publishes through JetStream.
func (e *Emit) UsesJetStream() bool { return e.JetStream == nil || *e.JetStream }

// EmitAggregates returns the aggregates target e publishes, sorted.
func (s *Stream) EmitAggregates(e *Emit) []string {
	if len(e.Aggregates) == 0 {
		return s.AggregateNames()
	}
	return slices.Sorted(slices.Values(e.Aggregates))
}

// EmitGroupBy returns the dimensions target e keeps.
func (s *Stream) EmitGroupBy(e *Emit) []string {
	if e.GroupBy == nil {
		return s.GroupBy
	}
	return e.GroupBy
}

// normalizeEmits fills each target's defaults (Normalize).
func (s *Stream) normalizeEmits() {
	for i := range s.Emit {
		e := &s.Emit[i]
		if e.Subject == "" && s.Name != "" {
			e.Subject = "sketchd.emit." + s.Name
		}
		if e.Window == 0 {
			e.Window = s.Granularity
		}
		if e.Trigger == "" {
			e.Trigger = EmitOnClose
		}
	}
}

// validateEmits checks the targets: their subjects (literal, and not read
// by the stream: see subjectLoops), aggregates, grouping, window and
// trigger. The kind parameters are checked by the query API's parser
// (api.CheckEmit), which owns them.
func (s *Stream) validateEmits(bad func(field, format string, args ...any)) {
	if len(s.Emit) > MaxEmits {
		bad("emit", "at most %d targets, got %d", MaxEmits, len(s.Emit))
		return
	}
	seen := map[string]int{}
	for i := range s.Emit {
		e := &s.Emit[i]
		f := fmt.Sprintf("emit[%d]", i)
		for _, p := range SubjectProblems(e.Subject, false) {
			bad(f+".subject", "%s", p)
		}
		if j, ok := seen[e.Subject]; ok {
			bad(f+".subject", "emit[%d] publishes to %q already", j, e.Subject)
		}
		seen[e.Subject] = i
		for j, a := range e.Aggregates {
			if _, ok := s.Aggregates[a]; !ok {
				bad(fmt.Sprintf("%s.aggregates[%d]", f, j), "no aggregate %q in the stream", a)
			}
			if slices.Contains(e.Aggregates[:j], a) {
				bad(fmt.Sprintf("%s.aggregates[%d]", f, j), "%q listed twice", a)
			}
		}
		for j, d := range e.GroupBy {
			if !slices.Contains(s.GroupBy, d) {
				bad(fmt.Sprintf("%s.group_by[%d]", f, j), "%q is not one of the stream's group_by dimensions [%s]", d, strings.Join(s.GroupBy, ", "))
			}
			if slices.Contains(e.GroupBy[:j], d) {
				bad(fmt.Sprintf("%s.group_by[%d]", f, j), "%q listed twice", d)
			}
		}
		g, w := s.Granularity.Std(), e.Window.Std()
		switch {
		case w <= 0:
			bad(f+".window", "must be positive, got %s", e.Window)
		case g > 0 && w%g != 0:
			bad(f+".window", "must be a multiple of the granularity (%s), got %s", s.Granularity, e.Window)
		case w > 24*time.Hour:
			bad(f+".window", "at most 24h, got %s", e.Window)
		}
		switch e.Trigger {
		case EmitOnClose, EmitOnFinal:
		default:
			bad(f+".trigger", "unknown trigger %q: want close or final", e.Trigger)
		}
	}
}

// EmitStatus is the progress of one emit target, for the stream status.
type EmitStatus struct {
	Subject string `json:"subject"`
	// ClosedTo and FinalTo are the ends (unix ns) up to which windows were
	// published at close and as final; NoTime before the first.
	ClosedTo int64 `json:"closed_to"`
	FinalTo  int64 `json:"final_to"`
	// Messages published (duplicates included), duplicates the JetStream
	// target dropped (a message published again after a restart), and
	// failed attempts (retried).
	Messages   uint64 `json:"messages"`
	Duplicates uint64 `json:"duplicates"`
	Errors     uint64 `json:"errors"`
	// Error is the last failure, cleared by the next success.
	Error string `json:"error,omitempty"`
}
