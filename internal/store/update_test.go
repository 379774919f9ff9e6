package store

import (
	"errors"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// TestUpdatePaneBeforeRetained: UpdatePane refuses, with an *ExpiredError
// naming the first retained pane start, a pane before the retention
// horizon of the store's clock, writes nothing and keeps the id unused;
// the first retained pane updates. A stream keeping everything takes a
// pane before 1970 (queries read it: TestQueryBefore1970 in internal/api).
func TestUpdatePaneBeforeRetained(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)
	o := quietOptions()
	o.Now = func() time.Time { return now }
	db := openTest(t, t.TempDir(), o)
	ctx := t.Context()
	kept := testSpec("kept", time.Minute) // retention 0: everything
	short := testSpec("short", time.Minute)
	short.Retention = sketchd.Duration(time.Hour)
	edits := 0
	edit := func(p *sketchd.PaneRecord, exists bool) error { edits++; p.Events++; return nil }
	horizon := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC).UnixNano() // the pane holding now - 1h
	for _, c := range []struct {
		spec  sketchd.Stream
		start int64 // refused
		from  int64 // the ExpiredError's, and accepted
		name  string
	}{
		{short, horizon - int64(time.Minute), horizon, "older than retention"},
		{short, -int64(time.Minute), horizon, "before 1970, older than retention"},
	} {
		info, err := db.CreateStream(ctx, c.spec)
		if errors.Is(err, ErrExists) {
			info, err = db.Stream(ctx, c.spec.Name)
		}
		if err != nil {
			t.Fatal(err)
		}
		id := c.name // one id per case
		res, err := db.UpdatePane(ctx, info.ID, "de", c.start, Import{ID: id, Aggregate: "users"}, edit)
		var ee *ExpiredError
		if res.Applied || !errors.As(err, &ee) || !errors.Is(err, ErrExpired) || ee.Start != c.start || ee.From != c.from {
			t.Errorf("%s: applied %t, %v, want an ExpiredError from %d", c.name, res.Applied, err, c.from)
		}
		if edits != 0 {
			t.Fatalf("%s: edit called %d times", c.name, edits)
		}
		if res, err := db.UpdatePane(ctx, info.ID, "de", c.from, Import{ID: id, Aggregate: "users"}, edit); err != nil || !res.Applied {
			t.Errorf("%s: the id at the first retained pane: applied %t, %v", c.name, res.Applied, err)
		}
		edits = 0
	}
	info, err := db.CreateStream(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := db.UpdatePane(ctx, info.ID, "de", -int64(time.Minute), Import{ID: "kept-1969", Aggregate: "users"}, edit); err != nil || !res.Applied || edits != 1 {
		t.Errorf("a pane before 1970 of a stream keeping everything: applied %t, %v, %d edits", res.Applied, err, edits)
	}
}
