package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/sketch"
)

// importAnswer is an import's answer as a client reads it.
type importAnswer struct {
	Applied     bool   `json:"applied"`
	Count       uint64 `json:"count"`
	EventsAdded uint64 `json:"events_added"`
}

// importAt posts body as an import of aggregate agg of the shop stream
// (or stream) into (url, pane) under id.
func (f *kindsFixture) importAt(tb testing.TB, stream, agg, key string, pane time.Time, id string, body []byte) response {
	tb.Helper()
	return f.post(tb, "/v1/streams/"+stream+"/aggregates/"+agg+"/import?key=url="+url.QueryEscape(key)+
		"&pane="+url.QueryEscape(pane.Format(time.RFC3339))+"&id="+url.QueryEscape(id), body, kindsAdmin)
}

// paneWindow is the one window of aggregate agg of stream over the pane
// starting at pane, for key url=key: its raw answer and events.
func (f *kindsFixture) paneWindow(tb testing.TB, stream, agg, key string, pane time.Time) (json.RawMessage, uint64) {
	tb.Helper()
	g := time.Duration(f.spec.Granularity)
	var a struct {
		Groups []struct {
			Windows []json.RawMessage `json:"windows"`
		} `json:"groups"`
	}
	f.getJSON(tb, "/v1/streams/"+stream+"/aggregates/"+agg+"?from="+url.QueryEscape(pane.Format(time.RFC3339))+
		"&to="+url.QueryEscape(pane.Add(g).Format(time.RFC3339))+"&where=url="+url.QueryEscape(key), &a)
	if len(a.Groups) == 0 {
		return nil, 0
	}
	if len(a.Groups) != 1 || len(a.Groups[0].Windows) != 1 {
		tb.Fatalf("%s %s %s: %d groups, want one window", stream, agg, key, len(a.Groups))
	}
	var w struct{ Events uint64 }
	if err := json.Unmarshal(a.Groups[0].Windows[0], &w); err != nil {
		tb.Fatal(err)
	}
	return a.Groups[0].Windows[0], w.Events
}

func sketchBytes(tb testing.TB, s sketch.Sketch) []byte {
	tb.Helper()
	b, err := s.AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestImportIDRules: an import id names one source pane's import into one
// pane, its aggregates one POST each, through the router into the real
// store. The same id imports a second and a third aggregate of the pane
// (it answered applied: false and dropped them: black-box repro-4), and the
// pane's events grow by the most any of them counted, not by their sum
// (repro-1); a retry of each changes nothing; the same aggregate from
// another body, or the id into another key or pane, is 409
// import_id_conflict and stores nothing; another id adds up.
func TestImportIDRules(t *testing.T) {
	f := newKindsFixture(t)
	pane := t0.Add(2 * time.Minute)
	_, events0 := f.paneWindow(t, "shop", "users", "/cart", pane)
	if events0 == 0 {
		t.Fatal("the fixture's pane holds no events")
	}
	th, _ := sketch.NewTheta(0)
	for i := range 300 {
		th.Insert(fmt.Appendf(nil, "imported%d", i))
	}
	hll, _ := sketch.NewHLL(10)
	for i := range 200 { // the visits field: some events lacked it
		hll.Insert(fmt.Appendf(nil, "imported%d", i))
	}
	dd, _ := sketch.NewDDSketch(0.01)
	for i := range 500 {
		_ = dd.Add(float64(i + 1))
	}
	bodies := map[string][]byte{"users": sketchBytes(t, th), "visits": sketchBytes(t, hll), "lat": sketchBytes(t, dd)}
	th.Insert([]byte("one more"))
	otherUsers := sketchBytes(t, th)
	counts := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, agg := range []string{"users", "visits", "lat", "latency"} {
			for _, key := range []string{"/cart", "/checkout"} {
				for _, p := range []time.Time{pane, pane.Add(time.Minute)} {
					g := time.Duration(f.spec.Granularity)
					out[fmt.Sprintf("%s %s %s", agg, key, p.Format(time.TimeOnly))] = f.sketchOf(t, "/v1/streams/shop/aggregates/"+agg+"/sketch?from="+
						url.QueryEscape(p.Format(time.RFC3339))+"&to="+url.QueryEscape(p.Add(g).Format(time.RFC3339))+"&where=url="+url.QueryEscape(key)).Count()
				}
			}
		}
		return out
	}

	for _, s := range []struct {
		name    string
		agg     string
		key     string
		pane    time.Time
		id      string
		body    []byte
		status  int
		code    string
		applied bool
		added   uint64
		events  uint64 // the pane's, after
	}{
		{"the first aggregate adds its count", "users", "/cart", pane, "backfill-17", bodies["users"], 200, "", true, 300, events0 + 300},
		{"a second aggregate under the id merges, adding nothing (200 <= 300)", "visits", "/cart", pane, "backfill-17", bodies["visits"], 200, "", true, 0, events0 + 300},
		{"a third adds how much it exceeds the most (500 - 300)", "lat", "/cart", pane, "backfill-17", bodies["lat"], 200, "", true, 200, events0 + 500},
		{"a retry changes nothing", "users", "/cart", pane, "backfill-17", bodies["users"], 200, "", false, 0, events0 + 500},
		{"a retry of a later aggregate changes nothing", "visits", "/cart", pane, "backfill-17", bodies["visits"], 200, "", false, 0, events0 + 500},
		{"the same aggregate from another body conflicts", "users", "/cart", pane, "backfill-17", otherUsers, 409, "import_id_conflict", false, 0, events0 + 500},
		{"the id into another key conflicts", "latency", "/checkout", pane, "backfill-17", mustTDigestBlob(t), 409, "import_id_conflict", false, 0, events0 + 500},
		{"the id into another pane conflicts", "latency", "/cart", pane.Add(time.Minute), "backfill-17", mustTDigestBlob(t), 409, "import_id_conflict", false, 0, events0 + 500},
		{"a retry's body into another key conflicts", "users", "/checkout", pane, "backfill-17", bodies["users"], 409, "import_id_conflict", false, 0, events0 + 500},
		{"another id adds up", "users", "/cart", pane, "backfill-18", bodies["users"], 200, "", true, 300, events0 + 800},
	} {
		want := counts() // before the step; the applied import's sketch grows by its count below
		r := f.importAt(t, "shop", s.agg, s.key, s.pane, s.id, s.body)
		if r.status != s.status {
			t.Fatalf("%s: %d %s, want %d", s.name, r.status, r.body, s.status)
		}
		after := counts()
		if s.code != "" {
			if p := r.problem(t); p.Code != s.code {
				t.Errorf("%s: code %s, want %s", s.name, p.Code, s.code)
			}
		} else {
			var a importAnswer
			if err := json.Unmarshal(r.body, &a); err != nil || a.Applied != s.applied || a.EventsAdded != s.added {
				t.Errorf("%s: %s, want applied %t, events_added %d", s.name, r.body, s.applied, s.added)
			}
			// An applied import adds its count to its aggregate's sketch of
			// the pane: that changes, nothing else does.
			k := fmt.Sprintf("%s %s %s", s.agg, s.key, s.pane.Format(time.TimeOnly))
			if s.applied {
				want[k] += a.Count
			}
		}
		for k, c := range after {
			if c != want[k] {
				t.Errorf("%s: the %s sketch's count is %d, want %d", s.name, k, c, want[k])
			}
		}
		for _, agg := range []string{"users", "visits", "lat", "latency"} {
			if _, ev := f.paneWindow(t, "shop", agg, "/cart", pane); ev != s.events {
				t.Errorf("%s: the pane's events as %s reads them: %d, want %d", s.name, agg, ev, s.events)
			}
		}
	}
}

func mustTDigestBlob(tb testing.TB) []byte {
	tb.Helper()
	td, err := sketch.NewTDigest(100)
	if err != nil {
		tb.Fatal(err)
	}
	_ = td.Add(1)
	return sketchBytes(tb, td)
}

// TestImportPaneRoundTrip: a pane moved whole from one stream to another,
// every aggregate's sketch exported and imported under one id (four kinds:
// theta, hll, ddsketch, tdigest), reads back in the other stream as it was:
// every aggregate's window answer equals the source's, events included
// (they were 4x the source's: each import added its count, black-box
// repro-1).
func TestImportPaneRoundTrip(t *testing.T) {
	f := newKindsFixture(t)
	dst := f.spec
	dst.Name, dst.Subject = "mirror", "events.mirror"
	info, err := f.db.CreateStream(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	st := f.status
	st.ID, st.Spec = info.ID, dst
	h, err := New(Config{
		Streams: newFakeStreams(f.status, st), Querier: newQuerier(t, f.db, query.Options{}), Panes: f.db,
		AdminToken: kindsAdmin, Now: func() time.Time { return t0.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.fixture = &fixture{h: h, status: f.status}

	pane := t0.Add(3 * time.Minute)
	g := time.Duration(f.spec.Granularity)
	rng := "from=" + url.QueryEscape(pane.Format(time.RFC3339)) + "&to=" + url.QueryEscape(pane.Add(g).Format(time.RFC3339))
	aggs := dst.AggregateNames()
	var added uint64
	for i, agg := range aggs {
		if _, ev := f.paneWindow(t, "mirror", agg, "/cart", pane); i == 0 && ev != 0 {
			t.Fatalf("the mirror holds %d events before the imports", ev)
		}
		r := f.get(t, "/v1/streams/shop/aggregates/"+agg+"/sketch?"+rng+"&where=url=/cart")
		if r.status != http.StatusOK {
			t.Fatalf("export %s: %d %s", agg, r.status, r.body)
		}
		r = f.importAt(t, "mirror", agg, "/cart", pane, "move-/cart@"+pane.Format(time.RFC3339), r.body)
		var a importAnswer
		if r.status != http.StatusOK || json.Unmarshal(r.body, &a) != nil || !a.Applied {
			t.Fatalf("import %s: %d %s", agg, r.status, r.body)
		}
		added += a.EventsAdded
	}
	_, srcEvents := f.paneWindow(t, "shop", aggs[0], "/cart", pane)
	if added != srcEvents {
		t.Errorf("events_added sum to %d over %d imports, want the source pane's %d", added, len(aggs), srcEvents)
	}
	for _, agg := range aggs {
		want, wantEvents := f.paneWindow(t, "shop", agg, "/cart", pane)
		got, gotEvents := f.paneWindow(t, "mirror", agg, "/cart", pane)
		if gotEvents != wantEvents {
			t.Errorf("%s: events %d, the source's %d", agg, gotEvents, wantEvents)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the mirror's window\n%s\nthe source's\n%s", agg, got, want)
		}
	}
	// Checked by the store's own reads too: the pane holds one sketch per
	// slot and the source's events.
	var panes []sketchd.PaneRecord
	if err := f.db.ScanPanes(t.Context(), info.ID, []string{sketchd.EncodeKey("/cart")}, pane.UnixNano(), pane.Add(g).UnixNano(), func(p sketchd.PaneRecord) error {
		panes = append(panes, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(panes) != 1 || panes[0].Events != srcEvents || len(panes[0].Sketches) != len(aggs) {
		t.Errorf("stored panes %+v, want one of %d events, %d sketches", panes, srcEvents, len(aggs))
	}
}
