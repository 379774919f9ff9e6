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
	"aggregates":  "stored panes hold their sketches by position in the aggregate list, so adding or removing one would misread every stored pane (not supported yet). Create a new stream with the aggregates you want",
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
	if a == (StreamAlter{}) {
		return a, &FieldError{Field: "", Msg: "nothing to alter: give retention, allowed_lateness, max_out_of_orderness, idle_timeout or rollups"}
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
