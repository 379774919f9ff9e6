package sketchd

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSubjectLen bounds every subject a spec names (stream, late and
// dead-letter subjects). nats-server closes a client whose control line
// (PUB/SUB plus the subject) exceeds 4 KiB; a subject far below that keeps
// one spec from killing sketchd's shared connection.
const MaxSubjectLen = 256

// ReservedPrefix is the subject space sketchd publishes to (late events and
// dead letters): a stream may not read from it, or it would read its own
// output and loop.
const ReservedPrefix = "sketchd."

// SubjectProblems checks s against NATS subject syntax and returns every
// problem found ("" problems means valid): non-empty, at most MaxSubjectLen
// bytes, valid UTF-8 without whitespace, control characters or NUL, no
// empty token, and (only when wildcards is true) '*' and '>' as whole
// tokens with '>' last.
func SubjectProblems(s string, wildcards bool) []string {
	if s == "" {
		return []string{"required"}
	}
	var out []string
	q := quoteShort(s)
	if len(s) > MaxSubjectLen {
		out = append(out, fmt.Sprintf("subject %s is %d bytes long, more than the %d allowed", q, len(s), MaxSubjectLen))
	}
	if !utf8.ValidString(s) {
		out = append(out, fmt.Sprintf("subject %s is not valid UTF-8", q))
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		out = append(out, fmt.Sprintf("subject %s contains whitespace or control characters (NUL included)", q))
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			out = append(out, fmt.Sprintf("subject %s has an empty token (at position %d)", q, i+1))
		case (t == "*" || t == ">") && !wildcards:
			out = append(out, fmt.Sprintf("subject %s must not contain wildcards", q))
		case t == ">" && i != len(toks)-1:
			out = append(out, fmt.Sprintf("subject %s: '>' must be the last token", q))
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			out = append(out, fmt.Sprintf("subject %s: wildcards '*' and '>' must be whole tokens", q))
		}
	}
	return out
}

// SubjectsOverlap reports whether some subject matches both a and b (each
// a valid subject, wildcards allowed).
func SubjectsOverlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(ta) && i == len(tb):
			return true
		case i == len(ta) || i == len(tb):
			return false
		case ta[i] == ">" || tb[i] == ">":
			return true
		case ta[i] == "*" || tb[i] == "*" || ta[i] == tb[i]:
			continue
		default:
			return false
		}
	}
}

// SubjectCovers reports whether every subject that sub matches is matched
// by pattern too (both valid, wildcards allowed): a JetStream stream on
// pattern captures everything a consumer filtered on sub can ask for.
func SubjectCovers(pattern, sub string) bool {
	tp, ts := strings.Split(pattern, "."), strings.Split(sub, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(tp) && i == len(ts):
			return true
		case i < len(tp) && tp[i] == ">":
			return i < len(ts)
		case i == len(tp) || i == len(ts):
			return false
		case ts[i] == ">":
			return false
		case tp[i] == "*" || tp[i] == ts[i]:
			continue
		default:
			return false
		}
	}
}

// subjectLoops lists how s's own subjects feed each other: its subject
// may not match its late or dead-letter subject, nor sketchd's reserved
// prefix. Other streams' subjects are the registry's to check (see
// SubjectConflicts).
func (s *Stream) subjectLoops() []*FieldError {
	if len(SubjectProblems(s.Subject, true)) > 0 {
		return nil // reported by Validate already
	}
	var out []*FieldError
	if SubjectsOverlap(s.Subject, ReservedPrefix+">") {
		out = append(out, &FieldError{Field: "subject", Msg: fmt.Sprintf(
			"subject %s overlaps %s>, the subjects sketchd publishes late events and dead letters to: a stream may not read them (it would read its own output)", quoteShort(s.Subject), ReservedPrefix)})
	}
	for _, o := range s.outputSubjects() {
		if SubjectsOverlap(s.Subject, o.subject) {
			out = append(out, &FieldError{Field: o.field, Msg: fmt.Sprintf(
				"%s %s overlaps the stream's subject %s: every event published there would be read again, an endless loop", o.field, quoteShort(o.subject), quoteShort(s.Subject))})
		}
	}
	return out
}

type outSubject struct{ field, subject string }

// outputSubjects returns the subjects s publishes to (late events, dead
// letters, emitted windows), with the field that names each.
func (s *Stream) outputSubjects() []outSubject {
	var out []outSubject
	if s.Late == LateDeadLetter && len(SubjectProblems(s.LateSubject, false)) == 0 {
		out = append(out, outSubject{"late_subject", s.LateSubject})
	}
	if s.DeadLetterSubject != "" && len(SubjectProblems(s.DeadLetterSubject, false)) == 0 {
		out = append(out, outSubject{"dead_letter_subject", s.DeadLetterSubject})
	}
	for i, e := range s.Emit {
		if len(SubjectProblems(e.Subject, false)) == 0 {
			out = append(out, outSubject{fmt.Sprintf("emit[%d].subject", i), e.Subject})
		}
	}
	return out
}

// SubjectConflicts returns the ways s and the other registered streams
// would feed each other: s reading what another publishes (its late or
// dead-letter subjects) or the reverse. Each problem names s's field.
func (s *Stream) SubjectConflicts(others []Stream) []*FieldError {
	var out []*FieldError
	for i := range others {
		o := &others[i]
		if o.Name == s.Name {
			continue
		}
		for _, os := range o.outputSubjects() {
			if SubjectsOverlap(s.Subject, os.subject) {
				out = append(out, &FieldError{Field: "subject", Msg: fmt.Sprintf(
					"subject %s overlaps stream %q's %s %s: this stream would read what that one publishes", quoteShort(s.Subject), o.Name, os.field, quoteShort(os.subject))})
			}
		}
		for _, ms := range s.outputSubjects() {
			if SubjectsOverlap(o.Subject, ms.subject) {
				out = append(out, &FieldError{Field: ms.field, Msg: fmt.Sprintf(
					"%s %s overlaps stream %q's subject %s: that stream would read what this one publishes", ms.field, quoteShort(ms.subject), o.Name, quoteShort(o.Subject))})
			}
		}
	}
	return out
}

// quoteShort quotes s for a message, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

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

// validSubject returns s's subject problems as one message ("" when
// valid); see SubjectProblems.
func validSubject(s string, wildcards bool) string {
	return strings.Join(SubjectProblems(s, wildcards), "; ")
}
