package promapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

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
