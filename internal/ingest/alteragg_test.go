package ingest

// Issue 15 item 9: PATCH adds and removes aggregates without touching the
// others' history. Two instances read one JetStream stream: "alt" starts
// with two aggregates and gains three by PATCH, "ref" has all five from
// the start, so every answer of the altered stream has a reference.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// aggSpec is the JSON of a stream "aa" on ev.aa with the given aggregates.
func aggSpec(aggs string) string {
	return `{"name":"aa","subject":"ev.aa","time":{"field":"ts","format":"unix_ms"},"group_by":["country"],` +
		`"max_future":"876000h","retention":"876000h","max_out_of_orderness":"5s","allowed_lateness":"30s","aggregates":{` + aggs + `}}`
}

const (
	aggU = `"u":{"sketch":"hll","field":"user"}`
	aggC = `"c":{"sketch":"cms","field":"url"}`
	aggN = `"n":{"sketch":"hll","field":"url"}`
	aggT = `"t":{"sketch":"tdigest","field":"ms"}`
	aggR = `"r":{"sketch":"reservoir","size":8}`
)

// timedEvents returns n seeded events one second apart from start.
func timedEvents(seed uint64, n int, start time.Time) []event {
	evs := genEvents(seed, n)
	for i := range evs {
		evs[i].TS = start.Add(time.Duration(i) * time.Second).UnixMilli()
	}
	return evs
}

// exportSketch GETs the merged sketch of aggregate agg over [from, to):
// status, body and the exact event count it holds.
func (f *lifeFixture) exportSketch(tb testing.TB, agg string, from, to time.Time) (int, []byte, uint64) {
	tb.Helper()
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	resp, err := f.http.Get(f.url + "/v1/streams/aa/aggregates/" + agg + "/sketch?" + q.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, _ := strconv.ParseUint(resp.Header.Get("Sketchd-Events"), 10, 64)
	return resp.StatusCode, b, n
}

// waitEvents waits until aggregate agg's sketch over [from, to) holds n
// events (committed: queries read the store).
func (f *lifeFixture) waitEvents(tb testing.TB, agg string, from, to time.Time, n uint64) {
	tb.Helper()
	waitFor(tb, 15*time.Second, fmt.Sprintf("%s holds %d events", agg, n), func() (bool, string) {
		st, b, got := f.exportSketch(tb, agg, from, to)
		return st == http.StatusOK && got == n, fmt.Sprintf("%d %d %.80q", st, got, b)
	})
}

// streamJSON is the part of a stream's status the alter tests read.
type streamJSON struct {
	State  string               `json:"state"`
	Alters []sketchd.Alteration `json:"alters"`
	Spec   sketchd.Stream       `json:"spec"`
	// Backfill is the stream's backfill progress, if any.
	Backfill *sketchd.BackfillStatus `json:"backfill"`
}

func (f *lifeFixture) spec(tb testing.TB) streamJSON {
	tb.Helper()
	a := f.do(tb, http.MethodGet, "/v1/streams/aa", "")
	var st streamJSON
	if a.status != http.StatusOK {
		tb.Fatalf("GET: %d %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &st); err != nil {
		tb.Fatalf("GET: %v %s", err, a.body)
	}
	return st
}

// quantile is one quantile of a t-digest answer.
type quantile struct{ Value, Lower, Upper float64 }

// tdigestQuantile asks aggregate t's quantile q over [from, to).
func tdigestQuantile(tb testing.TB, f *lifeFixture, from, to time.Time, q string) quantile {
	tb.Helper()
	var res struct {
		Groups []struct {
			Windows []struct {
				Quantiles []quantile `json:"quantiles"`
			} `json:"windows"`
		} `json:"groups"`
	}
	qs := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "q": {q}}
	getJSON(tb, f.http, f.url+"/v1/streams/aa/aggregates/t?"+qs.Encode(), &res)
	if len(res.Groups) != 1 || len(res.Groups[0].Windows) != 1 || len(res.Groups[0].Windows[0].Quantiles) != 1 {
		tb.Fatalf("tdigest answer: %+v", res)
	}
	return res.Groups[0].Windows[0].Quantiles[0]
}

func TestAlterAggregates(t *testing.T) {
	alt := newLifeFixture(t, Options{})
	ref := newLifeFixtureOn(t, alt.ns, Options{})
	if a := alt.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU+","+aggC)); a.status != http.StatusCreated {
		t.Fatalf("create alt: %d %s", a.status, a.body)
	}
	if a := ref.do(t, http.MethodPost, "/v1/streams", aggSpec(strings.Join([]string{aggU, aggC, aggN, aggT, aggR}, ","))); a.status != http.StatusCreated {
		t.Fatalf("create ref: %d %s", a.status, a.body)
	}
	from, end := base, base.Add(10*time.Minute)
	publishEvents(t, alt.js, "ev.aa", timedEvents(21, 120, base)) // panes base, base+1m
	alt.waitEvents(t, "u", from, end, 120)
	_, cBefore, _ := alt.exportSketch(t, "c", from, end)

	// Add three aggregates: they start at the pane after the highest event
	// time applied (base+1m59s), base+2m.
	a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"aggregates":{`+strings.Join([]string{aggN, aggT, aggR}, ",")+`}}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH add: %d %s", a.status, a.body)
	}
	since := base.Add(2 * time.Minute)
	st := alt.spec(t)
	for _, n := range []string{"n", "t", "r"} {
		if s := st.Spec.Aggregates[n].Since; s == nil || !s.Equal(since) {
			t.Errorf("aggregate %s: since %v, want %s", n, s, since)
		}
	}
	if want := []string{"c", "u", "n", "r", "t"}; strings.Join(st.Spec.Slots, ",") != strings.Join(want, ",") {
		t.Errorf("slots %q, want %q", st.Spec.Slots, want)
	}
	if len(st.Alters) != 1 || len(st.Alters[0].Changes) != 3 || st.State != "running" {
		t.Errorf("status after add: %+v", st)
	}

	publishEvents(t, alt.js, "ev.aa", timedEvents(22, 120, base.Add(5*time.Minute))) // panes base+5m, +6m
	alt.waitEvents(t, "u", from, end, 240)
	ref.waitEvents(t, "u", from, end, 240)
	alt.waitEvents(t, "n", since, end, 120)

	// Old aggregates: the same sketch as the reference over the whole
	// range; new ones: the same from since on (hll, cms, reservoir merge
	// exactly). Count-min and reservoir encodings are canonical: the same
	// bytes. An HLL's is not (axiomhq writes its sparse temporary set in map
	// order, and which registers sit there depends on the merge order): the
	// same registers and count (this compared bytes, and failed 2 runs in
	// 12 on the same registers).
	for _, c := range []struct {
		agg  string
		from time.Time
	}{{"u", from}, {"c", from}, {"n", since}, {"r", since}} {
		_, got, gn := alt.exportSketch(t, c.agg, c.from, end)
		_, want, wn := ref.exportSketch(t, c.agg, c.from, end)
		if !sameSketch(t, got, want) || gn != wn {
			t.Errorf("%s from %s: %d bytes (%d events), reference %d bytes (%d events)", c.agg, c.from, len(got), gn, len(want), wn)
		}
	}
	// The t-digest: both hold the same 120 values (merged in another
	// order): the reference's median lies within the altered stream's
	// stated bounds.
	if got, want := tdigestQuantile(t, alt, since, end, "0.5"), tdigestQuantile(t, ref, since, end, "0.5"); want.Value < got.Lower || want.Value > got.Upper {
		t.Errorf("t p50 %+v, reference %+v: outside the bounds", got, want)
	}
	// Before since the new aggregates say they did not exist yet.
	if st, body, _ := alt.exportSketch(t, "n", from, end); st != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"code":"before_aggregate"`) {
		t.Errorf("n from %s: %d %s", from, st, body)
	}

	// Remove c: gone at once; u unchanged byte for byte.
	_, uBefore, _ := alt.exportSketch(t, "u", from, end)
	if a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"aggregates":{"c":null}}`); a.status != http.StatusOK {
		t.Fatalf("PATCH remove: %d %s", a.status, a.body)
	}
	if st, body, _ := alt.exportSketch(t, "c", from, end); st != http.StatusNotFound || !strings.Contains(string(body), `"code":"aggregate_not_found"`) {
		t.Errorf("removed c: %d %s", st, body)
	}
	if _, uAfter, _ := alt.exportSketch(t, "u", from, end); !sameSketch(t, uAfter, uBefore) {
		t.Errorf("u changed with the removal of c")
	}
	// Re-added, c starts empty after the last event (base+6m59s): base+7m.
	if a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"aggregates":{`+aggC+`}}`); a.status != http.StatusOK {
		t.Fatalf("PATCH re-add: %d %s", a.status, a.body)
	}
	st = alt.spec(t)
	if s := st.Spec.Aggregates["c"].Since; s == nil || !s.Equal(base.Add(7*time.Minute)) {
		t.Errorf("re-added c: since %v", s)
	}
	if want := []string{"", "u", "n", "r", "t", "c"}; strings.Join(st.Spec.Slots, ",") != strings.Join(want, ",") {
		t.Errorf("slots %q, want %q", st.Spec.Slots, want)
	}
	if st, body, n := alt.exportSketch(t, "c", base.Add(7*time.Minute), end); st != http.StatusOK || n != 0 {
		t.Errorf("re-added c holds %d events (%d %.100q); the old c's data came back", n, st, body)
	}
	if string(cBefore) == "" {
		t.Error("no c export before the alter")
	}
	publishEvents(t, alt.js, "ev.aa", timedEvents(23, 60, base.Add(8*time.Minute)))
	alt.waitEvents(t, "c", base.Add(7*time.Minute), end, 60)
	alt.waitEvents(t, "u", from, end, 300)
	t.Logf("alters: %+v", alt.spec(t).Alters)
}

// A PATCH with backfill replays what JetStream still holds into the added
// aggregates only: afterwards they answer over the whole history exactly as
// a stream that had them from the start (the sketches' bytes for hll, cms
// and reservoir; the t-digest within its bounds), with no since left (the
// JetStream stream held everything) and the backfill listed in the status.
func TestAlterBackfill(t *testing.T) {
	alt := newLifeFixture(t, Options{})
	ref := newLifeFixtureOn(t, alt.ns, Options{})
	if a := alt.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU)); a.status != http.StatusCreated {
		t.Fatalf("create alt: %d %s", a.status, a.body)
	}
	all := strings.Join([]string{aggU, aggC, aggN, aggT, aggR}, ",")
	if a := ref.do(t, http.MethodPost, "/v1/streams", aggSpec(all)); a.status != http.StatusCreated {
		t.Fatalf("create ref: %d %s", a.status, a.body)
	}
	from, end := base, base.Add(40*time.Minute)
	publishEvents(t, alt.js, "ev.aa", timedEvents(31, 1500, base)) // 25 minutes; 3 backfill steps
	alt.waitEvents(t, "u", from, end, 1500)
	_, uBefore, _ := alt.exportSketch(t, "u", from, end)

	a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"backfill":true,"aggregates":{`+strings.Join([]string{aggC, aggN, aggT, aggR}, ",")+`}}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	waitFor(t, 30*time.Second, "backfill done", func() (bool, string) {
		st := alt.spec(t)
		return st.Backfill != nil && st.Backfill.State == "done" && st.State == "running", fmt.Sprintf("%s %+v", st.State, st.Backfill)
	})
	st := alt.spec(t)
	if bf := st.Backfill; bf.From != 1 || bf.To != 1500 || bf.Done != 1500 || bf.Events != 1500 || bf.Covers != nil {
		t.Errorf("backfill %+v: want sequences 1..1500, 1500 events, complete", bf)
	}
	for _, n := range []string{"c", "n", "t", "r"} {
		if s := st.Spec.Aggregates[n].Since; s != nil {
			t.Errorf("aggregate %s: since %s after a complete backfill", n, s)
		}
	}
	if len(st.Alters) != 2 {
		t.Errorf("alters %+v: want the add and the backfill", st.Alters)
	}
	if _, uAfter, _ := alt.exportSketch(t, "u", from, end); !sameSketch(t, uAfter, uBefore) {
		t.Error("the backfill changed u")
	}
	publishEvents(t, alt.js, "ev.aa", timedEvents(32, 120, base.Add(30*time.Minute)))
	alt.waitEvents(t, "n", from, end, 1620)
	ref.waitEvents(t, "n", from, end, 1620)
	for _, agg := range []string{"u", "c", "n", "r"} {
		_, got, gn := alt.exportSketch(t, agg, from, end)
		_, want, wn := ref.exportSketch(t, agg, from, end)
		if !sameSketch(t, got, want) || gn != wn {
			t.Errorf("%s: %d bytes (%d events), reference %d bytes (%d events)", agg, len(got), gn, len(want), wn)
		}
	}
	for _, q := range []string{"0.1", "0.5", "0.99"} {
		got, want := tdigestQuantile(t, alt, from, end, q), tdigestQuantile(t, ref, from, end, q)
		if want.Value < got.Lower || want.Value > got.Upper {
			t.Errorf("t q%s %+v, reference %+v: outside the bounds", q, got, want)
		}
	}
}

// restart stops f's manager, as a process exit would, and starts a new one
// (and router) on the same store and NATS.
func (f *lifeFixture) restart(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	if err := f.m.Stop(ctx); err != nil {
		tb.Logf("stop: %v", err)
	}
	m, err := NewManager(f.nc, f.cs, f.db, testLogger(tb), Options{FlushInterval: 50 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Start(ctx, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Stop(context.Background()) })
	srv := httptest.NewServer(newTestAPI(tb, m, f.db, 10*time.Second))
	tb.Cleanup(srv.Close)
	f.m, f.url, f.http = m, srv.URL, srv.Client()
}

// A backfill stopped after its first step (its progress stored, as after a
// crash) resumes at the next start after that step: every event is applied
// once, and the sketches equal the reference's.
func TestAlterBackfillResumes(t *testing.T) {
	alt := newLifeFixture(t, Options{})
	ref := newLifeFixtureOn(t, alt.ns, Options{})
	if a := alt.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU)); a.status != http.StatusCreated {
		t.Fatalf("create alt: %d %s", a.status, a.body)
	}
	if a := ref.do(t, http.MethodPost, "/v1/streams", aggSpec(strings.Join([]string{aggU, aggC, aggN, aggR}, ","))); a.status != http.StatusCreated {
		t.Fatalf("create ref: %d %s", a.status, a.body)
	}
	from, end := base, base.Add(40*time.Minute)
	publishEvents(t, alt.js, "ev.aa", timedEvents(41, 1500, base))
	alt.waitEvents(t, "u", from, end, 1500)
	ref.waitEvents(t, "u", from, end, 1500)

	stopped := make(chan sketchd.BackfillStatus, 1)
	afterBackfillStep = func(st sketchd.BackfillStatus) bool {
		stopped <- st
		return true
	}
	t.Cleanup(func() { afterBackfillStep = nil })
	a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"backfill":true,"aggregates":{`+strings.Join([]string{aggC, aggN, aggR}, ",")+`}}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	first := <-stopped
	waitFor(t, 10*time.Second, "the stopped backfill's goroutine ends", func() (bool, string) {
		return !alt.m.backfilling("aa"), ""
	})
	afterBackfillStep = nil
	st := alt.spec(t)
	if bf := st.Backfill; bf == nil || bf.State != "running" || bf.Done != first.Done || bf.Done >= 1500 || bf.Events != first.Events {
		t.Fatalf("stored progress %+v after the first step %+v", st.Backfill, first)
	}
	t.Logf("stopped after sequence %d (%d events) of 1500", first.Done, first.Events)

	alt.restart(t)
	waitFor(t, 30*time.Second, "resumed backfill done", func() (bool, string) {
		st := alt.spec(t)
		return st.Backfill != nil && st.Backfill.State == "done" && st.State == "running", fmt.Sprintf("%s %+v", st.State, st.Backfill)
	})
	if bf := alt.spec(t).Backfill; bf.Done != 1500 || bf.Events != 1500 {
		t.Errorf("backfill %+v: want 1500 events, each once", bf)
	}
	for _, agg := range []string{"u", "c", "n", "r"} {
		_, got, gn := alt.exportSketch(t, agg, from, end)
		_, want, wn := ref.exportSketch(t, agg, from, end)
		if !sameSketch(t, got, want) || gn != wn {
			t.Errorf("%s: %d bytes (%d events), reference %d bytes (%d events)", agg, len(got), gn, len(want), wn)
		}
	}
}

// Rollup tier panes built after an alter carry the added aggregate: every
// tier pane equals the merge of its source panes in every slot
// (checkTiers), and those from since on hold the new aggregate's values.
func TestAlterAggregatesTiers(t *testing.T) {
	f := newLifeFixture(t, Options{})
	spec := strings.Replace(aggSpec(aggU), `"aggregates":`, `"rollups":[{"granularity":"5m","retention":"876000h"}],"aggregates":`, 1)
	if a := f.do(t, http.MethodPost, "/v1/streams", spec); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	publishEvents(t, f.js, "ev.aa", timedEvents(51, 300, base)) // 5 minutes
	f.waitEvents(t, "u", base, base.Add(time.Hour), 300)
	if a := f.do(t, http.MethodPatch, "/v1/streams/aa", `{"aggregates":{`+aggN+`}}`); a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	since := base.Add(5 * time.Minute)
	publishEvents(t, f.js, "ev.aa", timedEvents(52, 600, base.Add(10*time.Minute))) // 10 more minutes
	publishEvents(t, f.js, "ev.aa", timedEvents(53, 1, base.Add(40*time.Minute)))   // the watermark passes them
	f.waitEvents(t, "u", base, base.Add(time.Hour), 901)
	info, err := f.db.Stream(context.Background(), "aa")
	if err != nil {
		t.Fatal(err)
	}
	tierDone := base.Add(25 * time.Minute).UnixNano()
	waitFor(t, 30*time.Second, "tier built past base+25m", func() (bool, string) {
		c, ok, err := f.db.TierCursor(context.Background(), info.ID, 5*time.Minute)
		return err == nil && ok && c >= tierDone, fmt.Sprint(time.Unix(0, c).UTC(), ok, err)
	})
	checkTiers(t, f.db, info)
	slot, _ := info.Spec.Slot("n")
	var withN uint64
	for _, p := range spacePanes(t, f.db, info.ID, 5*time.Minute, tierDone) {
		if p.Start < since.UnixNano() {
			continue
		}
		blob := sketchd.SlotBlob(&p, slot)
		sk, err := sketchd.DecodeSketch(blob, sketch.KindHLL)
		if err != nil {
			t.Fatalf("tier pane %d: n: %v", p.Start, err)
		}
		if p.Events > 0 && sk.Count() == 0 {
			t.Errorf("tier pane %s of %q: %d events, n empty", time.Unix(0, p.Start).UTC(), p.Key, p.Events)
		}
		withN += p.Events
	}
	if withN != 600 {
		t.Errorf("tier panes from since hold %d events, want 600", withN)
	}
}

// Fetches that come back empty in the middle of a backfill (every other
// one here, as a loaded server's may: each waits 1 s) do not end it: the
// messages left are fetched again and every event is applied once. Until
// 2026-12-08 two empty fetches anywhere in a replay ended it and moved its
// progress to the end over messages never applied.
func TestAlterBackfillEmptyFetches(t *testing.T) {
	alt := newLifeFixture(t, Options{})
	ref := newLifeFixtureOn(t, alt.ns, Options{})
	if a := alt.do(t, http.MethodPost, "/v1/streams", aggSpec(aggU)); a.status != http.StatusCreated {
		t.Fatalf("create alt: %d %s", a.status, a.body)
	}
	if a := ref.do(t, http.MethodPost, "/v1/streams", aggSpec(strings.Join([]string{aggU, aggN}, ","))); a.status != http.StatusCreated {
		t.Fatalf("create ref: %d %s", a.status, a.body)
	}
	from, end := base, base.Add(40*time.Minute)
	publishEvents(t, alt.js, "ev.aa", timedEvents(51, 1500, base)) // 3 backfill steps
	alt.waitEvents(t, "u", from, end, 1500)
	ref.waitEvents(t, "u", from, end, 1500)

	var fetches atomic.Int64
	beforeBackfillFetch = func() bool { return fetches.Add(1)%2 == 0 }
	t.Cleanup(func() { beforeBackfillFetch = nil })
	a := alt.do(t, http.MethodPatch, "/v1/streams/aa", `{"backfill":true,"aggregates":{`+aggN+`}}`)
	if a.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	waitFor(t, 60*time.Second, "backfill ended", func() (bool, string) {
		st := alt.spec(t)
		return st.Backfill != nil && st.Backfill.State != "running" && st.State == "running", fmt.Sprintf("%s %+v", st.State, st.Backfill)
	})
	beforeBackfillFetch = nil
	if bf := alt.spec(t).Backfill; bf.State != "done" || bf.Done != 1500 || bf.Events != 1500 {
		t.Errorf("backfill %+v after %d fetches: want 1500 events, each once", bf, fetches.Load())
	}
	for _, agg := range []string{"u", "n"} {
		_, got, gn := alt.exportSketch(t, agg, from, end)
		_, want, wn := ref.exportSketch(t, agg, from, end)
		if !sameSketch(t, got, want) || gn != wn {
			t.Errorf("%s: %d bytes (%d events), reference %d bytes (%d events)", agg, len(got), gn, len(want), wn)
		}
	}
}
