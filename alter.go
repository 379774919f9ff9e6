package sketchd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// StreamAlter is a change to a running stream (PATCH /v1/streams/{name}):
// only what can change without touching stored panes. A nil field is left
// as it is.
type StreamAlter struct {
	Retention         *Duration `json:"retention,omitempty"`
	AllowedLateness   *Duration `json:"allowed_lateness,omitempty"`
	MaxOutOfOrderness *Duration `json:"max_out_of_orderness,omitempty"`
	IdleTimeout       *Duration `json:"idle_timeout,omitempty"`
	// Rollups replaces the stream's rollup tiers: tiers kept (same
	// granularity) keep what they built, new ones are built from the stored
	// panes in the background, removed ones are dropped.
	Rollups *[]Rollup `json:"rollups,omitempty"`
	// Aggregates adds and removes aggregates, as a JSON merge patch: a
	// name with a spec adds it (it starts empty at the next pane, see
	// Aggregate.Since), a name with null removes it (its slot is retired
	// and never reused). The other aggregates' history is untouched. An
	// existing aggregate's parameters cannot change: remove it and add one
	// under a new name.
	Aggregates map[string]*Aggregate `json:"aggregates,omitempty"`
	// Backfill replays what the stream's JetStream stream still holds into
	// the aggregates this alter adds (only them), in the background, before
	// the stream ingests again; the status shows its progress.
	Backfill bool `json:"backfill,omitempty"`
}

// Alteration is one applied alter, as the stream's status lists it.
type Alteration struct {
	At      time.Time `json:"at"`
	Changes []string  `json:"changes"` // "field: old -> new"
}

// refusedAlters says, per spec field an alter may not change, why and what
// to do instead.
var refusedAlters = map[string]string{
	"group_by":    "the key of every stored pane is the group-by tuple: panes cannot be re-keyed. Create a new stream with the new group_by (it reads the same subject; with JetStream it can replay what the JetStream stream still holds) and delete this one when the new one has the history you need",
	"granularity": "stored panes have this width, and every window is composed of whole panes: they cannot be split or merged in place. Create a new stream with the new granularity and delete this one when the new one has the history you need",
	"name":        "the name identifies the stream; create a new stream instead",
	"subject":     "a stream reads one subject for its whole life; create a new stream instead",
}

// ParseAlterJSON decodes an alter strictly: unknown, duplicate or
// case-mismatched keys are refused, and a field that cannot be altered is
// a *FieldError saying why and what to do instead.
func ParseAlterJSON(b []byte) (StreamAlter, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return StreamAlter{}, fmt.Errorf("stream alter: %w", err)
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if why, ok := refusedAlters[k]; ok {
			errs = append(errs, &FieldError{Field: k, Msg: "cannot be altered: " + why})
		}
	}
	if len(errs) > 0 {
		return StreamAlter{}, errors.Join(errs...)
	}
	if err := strictJSON(b, reflect.TypeFor[StreamAlter]()); err != nil {
		return StreamAlter{}, err
	}
	var a StreamAlter
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return StreamAlter{}, fmt.Errorf("stream alter: %w", err)
	}
	if a.Retention == nil && a.AllowedLateness == nil && a.MaxOutOfOrderness == nil && a.IdleTimeout == nil && a.Rollups == nil && a.Aggregates == nil {
		return a, &FieldError{Field: "", Msg: "nothing to alter: give retention, allowed_lateness, max_out_of_orderness, idle_timeout, rollups or aggregates"}
	}
	if a.Backfill && len(a.Added()) == 0 {
		return a, &FieldError{Field: "backfill", Msg: "fills the aggregates the same alter adds: add at least one"}
	}

	return a, nil
}

// Apply returns s with a applied, validated, and the list of changes
// ("field: old -> new"; empty when a changes nothing).
func (s Stream) Apply(a StreamAlter) (Stream, []string, error) {
	var changes []string
	set := func(field string, dst *Duration, v *Duration) {
		if v != nil && *v != *dst {
			changes = append(changes, fmt.Sprintf("%s: %s -> %s", field, *dst, *v))
			*dst = *v
		}
	}
	set("retention", &s.Retention, a.Retention)
	set("allowed_lateness", &s.AllowedLateness, a.AllowedLateness)
	set("max_out_of_orderness", &s.MaxOutOfOrderness, a.MaxOutOfOrderness)
	set("idle_timeout", &s.IdleTimeout, a.IdleTimeout)
	if a.Rollups != nil {
		next := Stream{Retention: s.Retention, Rollups: slices.Clone(*a.Rollups)}
		next.normalizeRollups()
		if !slices.Equal(next.Rollups, s.Rollups) {
			changes = append(changes, fmt.Sprintf("rollups: %s -> %s", rollupsString(s.Rollups), rollupsString(next.Rollups)))
			s.Rollups = next.Rollups
		}
	}
	changes, err := s.applyAggregates(a, changes)
	if err != nil {
		return s, nil, err
	}
	if a.Backfill && !s.JetStream {
		return s, nil, &FieldError{Field: "backfill", Msg: "needs a JetStream stream (jetstream: true): a core NATS stream keeps no events to replay"}
	}
	if a.Backfill && s.Partitions > 1 {
		return s, nil, &FieldError{Field: "backfill", Msg: "is not supported on a partitioned stream yet (each partition keeps its own position); add the aggregate without backfill"}
	}
	if a.Backfill && s.Time.Field == "" {
		return s, nil, &FieldError{Field: "backfill", Msg: "needs event times in the events (time.field): a processing-time stream cannot place replayed events in their panes"}
	}
	return s, changes, s.Validate()
}

// rollupsString lists tiers as "[1h keep 2160h0m0s, 1d keep ...]".
func rollupsString(rs []Rollup) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s keep %s", r.Granularity, r.Retention)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Added returns the names of the aggregates a adds, sorted.
func (a StreamAlter) Added() []string {
	var out []string
	for n, agg := range a.Aggregates {
		if agg != nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// removed returns the names of the aggregates a removes, sorted.
func (a StreamAlter) removed() []string {
	var out []string
	for n, agg := range a.Aggregates {
		if agg == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// applyAggregates adds and removes s's aggregates as a says, retiring and
// appending slots (addSlots). An added aggregate has no Since yet: the
// caller sets it when the alter takes effect (StartAggregates).
func (s *Stream) applyAggregates(a StreamAlter, changes []string) ([]string, error) {
	if a.Aggregates == nil {
		return changes, nil
	}
	var errs []error
	var added, removed []string
	for _, n := range a.removed() {
		if _, ok := s.Aggregates[n]; !ok {
			errs = append(errs, &FieldError{Field: "aggregates." + n, Msg: "no such aggregate to remove"})
			continue
		}
		removed = append(removed, n)
	}
	for _, n := range a.Added() {
		want := *a.Aggregates[n]
		if want.Since != nil {
			errs = append(errs, &FieldError{Field: "aggregates." + n + ".since", Msg: "is set by sketchd when the alter takes effect, not by the request"})
			continue
		}
		want.Normalize()
		if cur, ok := s.Aggregates[n]; ok {
			cur.Since = nil
			if cur != want {
				errs = append(errs, &FieldError{Field: "aggregates." + n, Msg: "an aggregate's parameters cannot change (its stored sketches were built with them): remove it (null) and add the new one under another name"})
			}
			continue // the same spec: nothing to do
		}
		added = append(added, n)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(added) == 0 && len(removed) == 0 {
		return changes, nil
	}
	aggs := maps.Clone(s.Aggregates)
	for _, n := range removed {
		delete(aggs, n)
		changes = append(changes, "aggregates."+n+": removed")
	}
	for _, n := range added {
		agg := *a.Aggregates[n]
		agg.Normalize()
		aggs[n] = agg
		changes = append(changes, fmt.Sprintf("aggregates.%s: added (%s)", n, agg.Sketch))
	}
	s.Slots = addSlots(s.SlotNames(), removed, added)
	s.Aggregates = aggs
	return changes, nil
}

// StartAggregates sets Since on the named aggregates (just added by an
// alter) from the stream's highest applied event time when the alter takes
// effect: see sinceOf.
func (s *Stream) StartAggregates(names []string, maxEventTime int64) {
	for _, n := range names {
		agg, ok := s.Aggregates[n]
		if !ok {
			continue
		}
		agg.Since = sinceOf(maxEventTime, s.Granularity)
		s.Aggregates[n] = agg
	}
}

// AddedAggregates returns the aggregates of next that prev does not have,
// sorted.
func AddedAggregates(prev, next Stream) []string {
	var out []string
	for _, n := range next.AggregateNames() {
		if _, ok := prev.Aggregates[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}
