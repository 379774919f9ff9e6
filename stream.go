package sketchd

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Stream is the unit of configuration: which NATS subject to read, how to
// read time and keys from an event, the pane size, the watermark policy and
// which sketches to keep. It comes from the YAML config file or the admin
// API (JSON); both decode into this type with the defaults of DefaultStream
// for every field they omit.
type Stream struct {
	// Name identifies the stream in the API: [A-Za-z0-9_-], at most 64 bytes.
	Name string `json:"name" yaml:"name"`
	// Subject is the NATS subject to read; wildcards are allowed.
	Subject string `json:"subject" yaml:"subject"`
	// JetStream selects a durable, replay-safe JetStream consumer (true, the
	// default) or an at-most-once core NATS subscription (false).
	JetStream bool `json:"jetstream" yaml:"jetstream"`
	// JetStreamStream names the JetStream stream that captures Subject. It is
	// created when absent (with JetStreamMaxAge) and bound when present.
	// Default: "SKETCHD_" + upper-cased Name.
	JetStreamStream string `json:"jetstream_stream,omitempty" yaml:"jetstream_stream,omitempty"`
	// JetStreamMaxAge limits how long a created JetStream stream keeps raw
	// events (0 = unlimited). Default 24h.
	JetStreamMaxAge Duration `json:"jetstream_max_age" yaml:"jetstream_max_age"`
	// Time says where an event's time is; a zero Time (no field) means
	// processing time.
	Time TimeSpec `json:"time" yaml:"time"`
	// GroupBy lists the key dimensions, as dotted paths into the event.
	GroupBy []string `json:"group_by" yaml:"group_by"`
	// Granularity is the pane width: the smallest window. It is a whole
	// number of seconds that divides 24h. Default 1m.
	Granularity Duration `json:"granularity" yaml:"granularity"`
	// MaxOutOfOrderness bounds disorder: watermark = max event time seen -
	// MaxOutOfOrderness. Default 10s; 0 means events arrive in order.
	MaxOutOfOrderness Duration `json:"max_out_of_orderness" yaml:"max_out_of_orderness"`
	// AllowedLateness keeps panes updatable this long past the watermark.
	// Default 1m; 0 finalizes a pane as soon as the watermark passes its end.
	AllowedLateness Duration `json:"allowed_lateness" yaml:"allowed_lateness"`
	// IdleTimeout advances the watermark with processing time once no event
	// has arrived for this long. Default 30s; 0 never advances it.
	IdleTimeout Duration `json:"idle_timeout" yaml:"idle_timeout"`
	// MaxFuture rejects events whose time is more than this ahead of
	// processing time, so one bad clock cannot drag the watermark into the
	// future and finalize everything. Default 1h.
	MaxFuture Duration `json:"max_future" yaml:"max_future"`
	// Late says what happens to too-late events: LateDrop counts them,
	// LateDeadLetter (the default) also publishes them to LateSubject.
	Late LatePolicy `json:"late" yaml:"late"`
	// LateSubject receives too-late events. Default "sketchd.late." + Name.
	LateSubject string `json:"late_subject,omitempty" yaml:"late_subject,omitempty"`
	// DeadLetterSubject receives invalid input with a header giving the
	// reason; "" drops it (it is counted either way). Default
	// "sketchd.invalid." + Name.
	DeadLetterSubject string `json:"dead_letter_subject,omitempty" yaml:"dead_letter_subject,omitempty"`
	// Retention drops panes that ended longer ago than this. Default 168h.
	Retention Duration `json:"retention" yaml:"retention"`
	// Aggregates are the sketches kept per pane and key, by name.
	Aggregates map[string]Aggregate `json:"aggregates" yaml:"aggregates"`
	// Slots is the pane slot layout once an alter has added or removed
	// aggregates (see SlotNames); nil means AggregateNames. Set by PATCH.
	Slots []string `json:"slots,omitempty" yaml:"slots,omitempty"`
	// FinalThrough is set by an alter that raises AllowedLateness: the end
	// of what the old lateness had made final at the committed watermark.
	// Panes ending at or before it stay final (FinalEnd), so nothing an
	// answer, a rollup tier or an emit target gave as final changes; the
	// new lateness applies to the panes after it. nil: none.
	FinalThrough *time.Time `json:"final_through,omitempty" yaml:"final_through,omitempty"`
	// Rollups are stored rollup tiers, finest first (see Rollup); none by
	// default.
	Rollups []Rollup `json:"rollups,omitempty" yaml:"rollups,omitempty"`
	// Emit lists the subjects each window is pushed to once it closes
	// (see Emit); none by default.
	Emit []Emit `json:"emit,omitempty" yaml:"emit,omitempty"`
	// Partitions splits the stream (see partition.go): 0, the default, is
	// unpartitioned; 1-256 partitions are consumed and stored each on its
	// own. PartitionBy lists the 1-based positions of the subject's `*`
	// tokens the partition hashes; empty hashes the whole subject.
	Partitions  int   `json:"partitions,omitempty" yaml:"partitions,omitempty"`
	PartitionBy []int `json:"partition_by,omitempty" yaml:"partition_by,omitempty"`
}

// TimeSpec locates the event time.
type TimeSpec struct {
	Field  string     `json:"field,omitempty" yaml:"field,omitempty"`   // dotted path; "" = processing time
	Format TimeFormat `json:"format,omitempty" yaml:"format,omitempty"` // default rfc3339
}

// TimeFormat is how an event time is written.
type TimeFormat string

// The time formats. Unix formats accept a JSON number (fractions allowed) or
// a string holding one.
const (
	TimeRFC3339 TimeFormat = "rfc3339"
	TimeUnixS   TimeFormat = "unix_s"
	TimeUnixMS  TimeFormat = "unix_ms"
	TimeUnixUS  TimeFormat = "unix_us"
	TimeUnixNS  TimeFormat = "unix_ns"
)

// UnitNanos returns the length of one unit of a unix format in nanoseconds,
// or 0 for rfc3339.
func (f TimeFormat) UnitNanos() int64 {
	switch f {
	case TimeUnixS:
		return int64(time.Second)
	case TimeUnixMS:
		return int64(time.Millisecond)
	case TimeUnixUS:
		return int64(time.Microsecond)
	case TimeUnixNS:
		return 1
	}
	return 0
}

// LatePolicy says what happens to too-late events.
type LatePolicy string

// The late policies.
const (
	LateDrop       LatePolicy = "drop"
	LateDeadLetter LatePolicy = "dead_letter"
)

// DefaultStream returns a stream with every default set and no name,
// subject or aggregates.
func DefaultStream() Stream {
	return Stream{
		JetStream:         true,
		JetStreamMaxAge:   Duration(24 * time.Hour),
		Granularity:       Duration(time.Minute),
		MaxOutOfOrderness: Duration(10 * time.Second),
		AllowedLateness:   Duration(time.Minute),
		IdleTimeout:       Duration(30 * time.Second),
		MaxFuture:         Duration(time.Hour),
		Late:              LateDeadLetter,
		Retention:         Duration(168 * time.Hour),
	}
}

// Normalize fills the derived defaults that depend on other fields (subjects
// and JetStream stream name from Name, the time format, the aggregates'
// parameters). Decoding calls it; callers building a Stream in Go should too.
func (s *Stream) Normalize() {
	if s.Time.Field != "" && s.Time.Format == "" {
		s.Time.Format = TimeRFC3339
	}
	if s.Name != "" {
		if s.JetStreamStream == "" && s.JetStream {
			s.JetStreamStream = "SKETCHD_" + strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		}
		if s.LateSubject == "" && s.Late == LateDeadLetter {
			s.LateSubject = "sketchd.late." + s.Name
		}
		if s.DeadLetterSubject == "" {
			s.DeadLetterSubject = "sketchd.invalid." + s.Name
		}
	}
	for name, a := range s.Aggregates {
		a.Normalize()
		s.Aggregates[name] = a
	}
	s.normalizeRollups()
	s.normalizeEmits()
}

// AggregateNames returns the aggregate names in their canonical order
// (sorted), the order of Event.Values and PaneRecord.Sketches.
func (s *Stream) AggregateNames() []string {
	names := make([]string, 0, len(s.Aggregates))
	for n := range s.Aggregates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// FieldError is a validation error for one field of a spec.
type FieldError struct {
	Field string // dotted path of the field at fault, e.g. "aggregates.users.precision"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Validate checks the spec and returns every problem found, each a
// *FieldError naming the field at fault (use errors.As to get them).
func (s *Stream) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if !nameRe.MatchString(s.Name) {
		bad("name", "must be 1-64 characters of A-Z, a-z, 0-9, _ or -, got %q", s.Name)
	}
	s.validateSource(bad)
	s.validateTime(bad)
	s.validateGroupBy(bad)
	s.validateWindows(bad)
	s.validateLate(bad)
	for _, e := range s.subjectLoops() {
		errs = append(errs, e)
	}
	if g := s.Granularity.Std(); s.Retention.Std() < g {
		bad("retention", "must be at least the granularity (%s), got %s", s.Granularity, s.Retention)
	} else if s.Retention.Std() < s.AllowedLateness.Std()+g {
		bad("retention", "must exceed granularity + allowed_lateness, or panes would be dropped while still open")
	}
	s.validateRollups(bad)
	s.validateEmits(bad)
	s.validateSlots(bad)
	s.validatePartitions(bad)
	errs = append(errs, s.aggregateErrors()...)
	return errors.Join(errs...)
}

// validateSource checks where the events come from: the subject and the
// JetStream stream.
func (s *Stream) validateSource(bad func(field, format string, args ...any)) {
	for _, p := range SubjectProblems(s.Subject, true) {
		bad("subject", "%s", p)
	}
	if s.JetStream && !nameRe.MatchString(s.JetStreamStream) {
		bad("jetstream_stream", "must be 1-64 characters of A-Z, a-z, 0-9, _ or -, got %q", s.JetStreamStream)
	}
	if s.JetStreamMaxAge < 0 {
		bad("jetstream_max_age", "must not be negative")
	}
}

// validateTime checks the event time's field and format.
func (s *Stream) validateTime(bad func(field, format string, args ...any)) {
	switch s.Time.Format {
	case "", TimeRFC3339, TimeUnixS, TimeUnixMS, TimeUnixUS, TimeUnixNS:
	default:
		bad("time.format", "unknown format %q: want rfc3339, unix_s, unix_ms, unix_us or unix_ns", s.Time.Format)
	}
	if s.Time.Field != "" {
		if err := validPath(s.Time.Field); err != "" {
			bad("time.field", "%s", err)
		}
	} else if s.Time.Format != "" {
		bad("time.format", "set without time.field (no field means processing time)")
	}
}

// validateGroupBy checks the key's dimensions: paths, each once, at most 16.
func (s *Stream) validateGroupBy(bad func(field, format string, args ...any)) {
	seen := map[string]bool{}
	for i, d := range s.GroupBy {
		if err := validPath(d); err != "" {
			bad(fmt.Sprintf("group_by[%d]", i), "%s", err)
		}
		if seen[d] {
			bad(fmt.Sprintf("group_by[%d]", i), "dimension %q listed twice", d)
		}
		seen[d] = true
	}
	if len(s.GroupBy) > 16 {
		bad("group_by", "at most 16 dimensions, got %d", len(s.GroupBy))
	}
}

// validateWindows checks the panes and the watermark: the granularity,
// the out-of-orderness, the allowed lateness, the idle timeout and how
// far in the future an event may be.
func (s *Stream) validateWindows(bad func(field, format string, args ...any)) {
	g := s.Granularity.Std()
	switch {
	case g < time.Second:
		bad("granularity", "must be at least 1s, got %s", s.Granularity)
	case g%time.Second != 0:
		bad("granularity", "must be a whole number of seconds, got %s", s.Granularity)
	case (24*time.Hour)%g != 0:
		bad("granularity", "must divide 24h evenly (1s, 10s, 1m, 5m, 15m, 1h, 24h, ...), got %s", s.Granularity)
	}
	if s.MaxOutOfOrderness < 0 {
		bad("max_out_of_orderness", "must not be negative")
	}
	if s.AllowedLateness < 0 {
		bad("allowed_lateness", "must not be negative")
	} else if s.AllowedLateness.Std()%time.Second != 0 {
		bad("allowed_lateness", "must be a whole number of seconds, got %s", s.AllowedLateness)
	}
	if s.IdleTimeout < 0 {
		bad("idle_timeout", "must not be negative (0 disables idle advance)")
	}
	if s.MaxFuture <= 0 {
		bad("max_future", "must be positive, got %s", s.MaxFuture)
	}
}

// validateLate checks where late and invalid events go.
func (s *Stream) validateLate(bad func(field, format string, args ...any)) {
	switch s.Late {
	case LateDrop:
	case LateDeadLetter:
		for _, p := range SubjectProblems(s.LateSubject, false) {
			bad("late_subject", "%s", p)
		}
	default:
		bad("late", "unknown policy %q: want drop or dead_letter", s.Late)
	}
	if s.DeadLetterSubject != "" {
		for _, p := range SubjectProblems(s.DeadLetterSubject, false) {
			bad("dead_letter_subject", "%s", p)
		}
	}
}

// aggregateErrors checks the aggregates: at least one, each name and
// sketch valid, and, when they all are, a pane's sketches within
// MaxPaneSketchBytes together.
func (s *Stream) aggregateErrors() []error {
	var errs []error
	if len(s.Aggregates) == 0 {
		errs = append(errs, &FieldError{Field: "aggregates", Msg: "at least one aggregate is required"})
	}
	aggOK := true
	for _, name := range s.AggregateNames() {
		a := s.Aggregates[name]
		if !nameRe.MatchString(name) {
			errs = append(errs, &FieldError{Field: "aggregates." + name, Msg: "aggregate name must be 1-64 characters of A-Z, a-z, 0-9, _ or -"})
		}
		for _, e := range a.validate() {
			e.Field = "aggregates." + name + "." + e.Field
			errs = append(errs, e)
			aggOK = false
		}
	}
	if aggOK {
		if e := paneBoundError(s.Aggregates, s.AggregateNames()); e != nil {
			errs = append(errs, e)
		}
	}
	return errs
}

// paneBoundError checks that the sketches of one pane can never outgrow
// MaxPaneSketchBytes (see Aggregate.MaxEncodedBytes); if they can, it names
// the aggregate with the largest bound, the first to shrink.
func paneBoundError(aggs map[string]Aggregate, names []string) *FieldError {
	total, worst, worstBytes := 0, "", -1
	for _, name := range names {
		n := aggs[name].MaxEncodedBytes() + 4
		total += n
		if n > worstBytes {
			worst, worstBytes = name, n
		}
	}
	if total <= MaxPaneSketchBytes {
		return nil
	}
	return &FieldError{Field: "aggregates." + worst, Msg: fmt.Sprintf(
		"the stream's %d sketches can reach %d KiB per pane (this one %d KiB), more than the %d KiB a pane may hold (one store transaction): shrink this aggregate (precision, epsilon/delta, top_k, compression, size, nominal_entries, or a larger relative_accuracy) or move aggregates to another stream",
		len(names), (total+1023)>>10, (worstBytes+1023)>>10, MaxPaneSketchBytes>>10)}
}

func validPath(p string) string {
	if p == "" {
		return "empty path"
	}
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			return fmt.Sprintf("path %q has an empty segment", p)
		}
	}
	return ""
}
