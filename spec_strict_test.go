package sketchd

import (
	"strings"
	"testing"
)

// Issue 15, item 8: spec keys match case-sensitively and once.
func TestSpecJSONStrict(t *testing.T) {
	const aggs = `"aggregates":{"u":{"sketch":"hll","field":"user"}}`
	tests := []struct {
		name, body, want string
	}{
		{"valid", `{"name":"a","subject":"ev.a",` + aggs + `}`, ""},
		{"case-insensitive top-level key", `{"Name":"a","subject":"ev.a",` + aggs + `}`, `unknown field "Name"`},
		{"case-insensitive nested key", `{"name":"a","subject":"ev.a","aggregates":{"u":{"Sketch":"hll","field":"user"}}}`, `unknown field "Sketch" in aggregates.u`},
		{"duplicate top-level key", `{"name":"a","name":"b","subject":"ev.a",` + aggs + `}`, `key "name" given twice`},
		{"duplicate aggregate", `{"name":"a","subject":"ev.a","aggregates":{"u":{"sketch":"hll","field":"a"},"u":{"sketch":"hll","field":"b"}}}`, `key "u" given twice in aggregates`},
		{"duplicate in time", `{"name":"a","subject":"ev.a","time":{"field":"ts","field":"t2"},` + aggs + `}`, `key "field" given twice in time`},
		{"syntax error left to the decoder", `{"name":"a",`, "unexpected end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStreamJSON([]byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// Issue 15, item 1: subjects follow NATS syntax, with every problem listed.
func TestSubjectProblems(t *testing.T) {
	tests := []struct {
		s         string
		wildcards bool
		want      int
	}{
		{"ev.a", false, 0}, {"ev.*.x", true, 0}, {"ev.>", true, 0}, {">", true, 0},
		{"", true, 1}, {strings.Repeat("a", 4100), true, 1}, {"a b", true, 1}, {"a\x00", true, 1},
		{"a..b", true, 1}, {"a.>.b", true, 1}, {"a.b*", true, 1}, {"a.*", false, 1},
		{strings.Repeat("a", 300) + " .>x..", true, 5}, {"\xff", true, 1}, {"a\tb", true, 1},
	}
	for _, tc := range tests {
		if got := SubjectProblems(tc.s, tc.wildcards); len(got) != tc.want {
			t.Errorf("SubjectProblems(%q, %v) = %q, want %d problems", quoteShort(tc.s), tc.wildcards, got, tc.want)
		}
	}
}

func TestSubjectOverlapAndCover(t *testing.T) {
	overlap := []struct {
		a, b string
		want bool
	}{
		{">", "sketchd.>", true}, {"sketchd.invalid.x", "sketchd.>", true}, {"a.*", "a.b", true},
		{"a.*", "a.b.c", false}, {"a.>", "a", false}, {"*.b", "a.*", true}, {"a.b", "a.c", false},
	}
	for _, tc := range overlap {
		if got := SubjectsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
	cover := []struct {
		p, s string
		want bool
	}{
		{"orders.>", "orders.eu", true}, {"orders.>", "orders.*.x", true}, {"orders.*", "orders.>", false},
		{"orders.*", "orders.eu", true}, {"orders.eu", "orders.*", false}, {">", "a.b", true}, {"a", "a", true},
	}
	for _, tc := range cover {
		if got := SubjectCovers(tc.p, tc.s); got != tc.want {
			t.Errorf("SubjectCovers(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
