package sketchd

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const emitYAML = specYAML + `
emit:
  - {subject: out.pageviews, aggregates: [latency, users], group_by: [country], window: 5m, params: {q: "0.5,0.99"}}
  - {jetstream: false, trigger: final, group_by: []}
`

func TestEmitSpec(t *testing.T) {
	var s Stream
	if err := yaml.Unmarshal([]byte(emitYAML), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := s.Emit[0], s.Emit[1]
	if !a.UsesJetStream() || a.Trigger != EmitOnClose || a.Window != Duration(5*time.Minute) || a.Params["q"] != "0.5,0.99" {
		t.Errorf("first target %+v", a)
	}
	if b.Subject != "sketchd.emit.pageviews" || b.UsesJetStream() || b.Trigger != EmitOnFinal || b.Window != s.Granularity {
		t.Errorf("defaults of the second target %+v", b)
	}
	if got := s.EmitGroupBy(&b); got == nil || len(got) != 0 {
		t.Errorf("group_by [] = %v, want empty (merge every key)", got)
	}
	// Absent group_by is the stream's; [] survives a JSON round trip.
	a.GroupBy = nil
	if got := s.EmitGroupBy(&a); len(got) != 2 {
		t.Errorf("absent group_by = %v, want the stream's", got)
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseStreamJSON(j)
	if err != nil {
		t.Fatal(err)
	}
	if back.Emit[1].GroupBy == nil || len(back.Emit[1].GroupBy) != 0 || back.Emit[0].Window != a.Window {
		t.Errorf("after JSON: %+v", back.Emit)
	}
}

func TestEmitValidate(t *testing.T) {
	base := func() Stream {
		var s Stream
		if err := yaml.Unmarshal([]byte(specYAML), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name  string
		emit  Emit
		field string
		msg   string
	}{
		{"wildcard", Emit{Subject: "out.*"}, "emit[0].subject", "wildcards"},
		{"own subject", Emit{Subject: "events.pageviews"}, "emit[0].subject", "overlaps the stream's subject"},
		{"aggregate", Emit{Subject: "o", Aggregates: []string{"nope"}}, "emit[0].aggregates[0]", "no aggregate"},
		{"group_by", Emit{Subject: "o", GroupBy: []string{"city"}}, "emit[0].group_by[0]", "not one of"},
		{"window", Emit{Subject: "o", Window: Duration(90 * time.Second)}, "emit[0].window", "multiple of the granularity"},
		{"window max", Emit{Subject: "o", Window: Duration(48 * time.Hour)}, "emit[0].window", "at most 24h"},
		{"trigger", Emit{Subject: "o", Trigger: "soon"}, "emit[0].trigger", "unknown trigger"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			s.Emit = []Emit{c.emit}
			s.Normalize()
			err := s.Validate()
			var fe *FieldError
			found := false
			for _, e := range unjoin(err) {
				if errors.As(e, &fe) && fe.Field == c.field && strings.Contains(fe.Msg, c.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s: ...%s..., got %v", c.field, c.msg, err)
			}
		})
	}
}

// TestEmitSubjectConflicts: another stream may not read what a target
// publishes, nor may a target publish to what another stream reads.
func TestEmitSubjectConflicts(t *testing.T) {
	var s Stream
	if err := yaml.Unmarshal([]byte(emitYAML), &s); err != nil {
		t.Fatal(err)
	}
	other := s
	other.Name, other.Subject, other.Emit = "other", "out.>", nil
	other.Normalize()
	got := s.SubjectConflicts([]Stream{other})
	if len(got) != 1 || got[0].Field != "emit[0].subject" {
		t.Fatalf("conflicts %v, want emit[0].subject", got)
	}
	got = other.SubjectConflicts([]Stream{s})
	if len(got) != 1 || got[0].Field != "subject" || !strings.Contains(got[0].Msg, "emit[0].subject") {
		t.Fatalf("conflicts %v, want subject naming emit[0].subject", got)
	}
}
