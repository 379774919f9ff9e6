package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// TestImportBeforeRetainedRange: an import into a pane older than the
// stream's retention (as of the store's clock, t0: 168h; one before 1970 too) is
// 422 pane_expired naming the retained range's start, and stores nothing:
// no pane, no key-index entry, no id (a retry of the same id inside the
// retained range applies). An import into the retained range's first pane
// applies and is read back.
func TestImportBeforeRetainedRange(t *testing.T) {
	f := newKindsFixture(t)
	g := time.Duration(f.spec.Granularity)
	retainedFrom := t0.Add(-time.Duration(f.spec.Retention)) // t0 is on the pane grid
	th, _ := sketch.NewTheta(0)
	for _, u := range []string{"a", "b", "c"} {
		th.Insert([]byte(u))
	}
	body, _ := th.AppendBinary(nil)
	importAt := func(pane time.Time, id string, body []byte) response {
		t.Helper()
		return f.post(t, "/v1/streams/shop/aggregates/users/import?key=url=/old&pane="+url.QueryEscape(pane.Format(time.RFC3339))+"&id="+id, body, kindsAdmin)
	}

	refused := []time.Time{
		retainedFrom.Add(-g),                            // the last pane retention dropped
		retainedFrom.Add(-time.Nanosecond),              // the same pane, by its last instant
		time.Date(1969, 12, 31, 23, 10, 0, 0, time.UTC), // before 1970
		time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC),     // the parser's first year
	}
	ids := make([]string, len(refused)) // one each, so that every refusal is checked to keep its id unused
	for i, pane := range refused {
		ids[i] = fmt.Sprintf("j%d", i)
		for _, b := range [][]byte{body, []byte("not a sketch")} { // refused before the body is read
			r := importAt(pane, ids[i], b)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("pane %s: %d %s, want 422 pane_expired", pane, r.status, r.body)
			}
			p := r.problem(t)
			if p.Code != codePaneExpired || p.Parameter != "pane" || p.RetainedFrom != retainedFrom.Format(time.RFC3339) {
				t.Errorf("pane %s: %+v, want code %s, parameter pane, retained_from %s", pane, p, codePaneExpired, retainedFrom.Format(time.RFC3339))
			}
		}
	}

	// Nothing was stored: a store whose clock still retains those panes
	// finds neither a pane nor a key-index entry of the key.
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pane := range refused {
		o := storeOptions()
		o.Now = func() time.Time { return pane.Add(time.Hour) }
		db, err := store.Open(f.dir, nil, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		start := sketchd.PaneStart(pane.UnixNano(), int64(g))
		var panes, keys int
		ctx := context.Background()
		if err := db.ScanPanes(ctx, f.info.ID, []string{sketchd.EncodeKey("/old")}, start, start+int64(g), func(sketchd.PaneRecord) error { panes++; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.Keys(ctx, f.info.ID, start, start+int64(g), func(string) error { keys++; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if panes != 0 || keys != 0 {
			t.Errorf("pane %s: %d panes, %d keys stored by a refused import", pane, panes, keys)
		}
	}
	f.db = openStore(t, f.dir)
	f.serve(t)

	// No id was used up: each applies inside the retained range, once, and
	// the pane reads back.
	var res importJSON
	for i, id := range append(ids, ids[0]) {
		r := importAt(retainedFrom, id, body)
		wantApplied := i < len(ids) // all but the final retry of ids[0]
		if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res.Applied != wantApplied || res.Count != 3 {
			t.Fatalf("import %s into the first retained pane: %d %s, want applied %t", id, r.status, r.body, wantApplied)
		}
	}
	rng := "from=" + url.QueryEscape(retainedFrom.Format(time.RFC3339)) + "&to=" + url.QueryEscape(retainedFrom.Add(g).Format(time.RFC3339))
	var got struct {
		Keys   int `json:"keys"`
		Groups []struct {
			Windows []struct {
				Events   uint64       `json:"events"`
				Distinct distinctJSON `json:"distinct"`
			} `json:"windows"`
		} `json:"groups"`
	}
	f.getJSON(t, "/v1/streams/shop/aggregates/users?"+rng+"&where=url=/old", &got)
	if got.Keys != 1 || len(got.Groups) != 1 || got.Groups[0].Windows[0].Events != uint64(3*len(ids)) || got.Groups[0].Windows[0].Distinct.Estimate != 3 {
		t.Errorf("the imported pane reads back as %+v, want 1 key, %d events, 3 distinct", got, 3*len(ids))
	}
}
