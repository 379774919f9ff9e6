package sketchd

import (
	"fmt"
	"strings"
)

// SubjectMatches reports whether the literal subject matches the NATS
// subject pattern: "*" matches one token, a final ">" one or more.
func SubjectMatches(pattern, subject string) bool {
	p, t := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, pt := range p {
		switch {
		case pt == ">":
			return len(t) > i
		case i >= len(t):
			return false
		case pt != "*" && pt != t[i]:
			return false
		}
	}
	return len(p) == len(t)
}

// PublishSubject returns the subject to publish the stream's events to:
// given, when it is a literal subject the stream reads, or, when given is
// empty, the stream's subject unless it has wildcards.
func (s *Stream) PublishSubject(given string) (string, error) {
	if given == "" {
		if validSubject(s.Subject, false) != "" {
			return "", fmt.Errorf("the stream reads the wildcard subject %q: name a subject it matches", s.Subject)
		}
		return s.Subject, nil
	}
	if msg := validSubject(given, false); msg != "" {
		return "", fmt.Errorf("not a subject to publish to: %s", msg)
	}
	if !SubjectMatches(s.Subject, given) {
		return "", fmt.Errorf("subject %q is not read by the stream, which reads %q", given, s.Subject)
	}
	return given, nil
}
