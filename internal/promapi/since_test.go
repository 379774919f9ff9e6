package promapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// A query of an aggregate added by an alter, over a range before its
// since, is an execution error naming the since, not an internal one.
func TestClassifyBeforeSince(t *testing.T) {
	since := time.Date(2026, 12, 4, 10, 2, 0, 0, time.UTC)
	err := fmt.Errorf("stream %q: %w", "aa", &query.SinceError{Aggregate: "n", Since: since, From: since.Add(-time.Hour)})
	typ, msg, internal := classify(err)
	if typ != errorExec || internal || !strings.Contains(msg, "2026-12-04T10:02:00Z") {
		t.Errorf("classify: %s %q internal=%v, want execution naming the since", typ, msg, internal)
	}
}

// fromSince leaves out the windows that start before since and keeps the
// others where they were: a range query's first window moves on by whole
// steps from where the query engine puts it (from rounded down to a pane).
func TestFromSince(t *testing.T) {
	at := func(hm string) int64 {
		tm, err := time.Parse("15:04:05", hm)
		if err != nil {
			t.Fatal(err)
		}
		return time.Date(2026, 12, 4, tm.Hour(), tm.Minute(), tm.Second(), 0, time.UTC).UnixNano()
	}
	since := time.Unix(0, at("10:02:00")).UTC()
	spec := &sketchd.Stream{Granularity: sketchd.Duration(time.Minute), Aggregates: map[string]sketchd.Aggregate{
		"old": {Sketch: sketchd.KindHLL},
		"new": {Sketch: sketchd.KindHLL, Since: &since},
	}}
	for _, c := range []struct {
		name     string
		qu       query.Query
		wantFrom int64
		wantOK   bool
	}{
		{"no since", query.Query{Aggregate: "old", From: at("09:00:00"), To: at("11:00:00"), Step: int64(5 * time.Minute)}, at("09:00:00"), true},
		{"range from since", query.Query{Aggregate: "new", From: at("10:02:00"), To: at("11:00:00"), Step: int64(time.Minute)}, at("10:02:00"), true},
		// windows [09:53, 09:58), [09:58, 10:03), [10:03, 10:08), ...
		{"range across since", query.Query{Aggregate: "new", From: at("09:53:30"), To: at("10:30:00"), Step: int64(5 * time.Minute)}, at("10:03:00"), true},
		{"range across since, on since", query.Query{Aggregate: "new", From: at("09:52:00"), To: at("10:30:00"), Step: int64(5 * time.Minute)}, at("10:02:00"), true},
		{"range before since", query.Query{Aggregate: "new", From: at("09:00:00"), To: at("10:02:00"), Step: int64(time.Minute)}, 0, false},
		// windows [09:52, 09:57), [09:57, 10:02), [10:02, 10:07): the last
		// one ends after to, and starts on since
		{"range whose last window starts on since", query.Query{Aggregate: "new", From: at("09:52:00"), To: at("10:02:30"), Step: int64(5 * time.Minute)}, at("10:02:00"), true},
		// windows [09:53, 09:58), [09:58, 10:03): both start before since
		{"range ending before a window from since", query.Query{Aggregate: "new", From: at("09:53:30"), To: at("10:03:00"), Step: int64(5 * time.Minute)}, 0, false},
		{"instant from since", query.Query{Aggregate: "new", From: at("10:02:30"), To: at("10:07:30")}, at("10:02:30"), true},
		{"instant across since", query.Query{Aggregate: "new", From: at("10:01:30"), To: at("10:06:30")}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := fromSince(spec, c.qu)
			if ok != c.wantOK {
				t.Fatalf("ok %v, want %v", ok, c.wantOK)
			}
			if !ok {
				return
			}
			if got.From != c.wantFrom {
				t.Errorf("from %s, want %s", time.Unix(0, got.From).UTC(), time.Unix(0, c.wantFrom).UTC())
			}
			if got.To != c.qu.To || got.Step != c.qu.Step {
				t.Errorf("to %d step %d changed: %+v", got.To, got.Step, got)
			}
		})
	}
}
