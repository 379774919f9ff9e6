package sketchd

import (
	"strings"
	"testing"
)

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{"*.b.>", "x.b.y", true},
		{"*.b.>", "x.c.y", false},
	}
	for _, tt := range tests {
		if got := SubjectMatches(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("SubjectMatches(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
}

func TestPublishSubject(t *testing.T) {
	tests := []struct {
		stream, given, want, err string
	}{
		{"a.b", "", "a.b", ""},
		{"a.b", "a.b", "a.b", ""},
		{"a.b", "a.c", "", "not read"},
		{"a.*", "", "", "wildcard"},
		{"a.*", "a.x", "a.x", ""},
		{"a.*", "a.*", "", "wildcards"},
		{"a.>", "a.x y", "", "whitespace"},
		{"a.>", "a..x", "", "empty token"},
	}
	for _, tt := range tests {
		s := Stream{Subject: tt.stream}
		got, err := s.PublishSubject(tt.given)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%q.PublishSubject(%q) = %q, %v; want %q", tt.stream, tt.given, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q.PublishSubject(%q) = %q, %v; want an error saying %q", tt.stream, tt.given, got, err, tt.err)
		}
	}
}
