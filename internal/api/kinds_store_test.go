package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	caio "github.com/caio/go-tdigest/v4"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/internal/window"
	"github.com/sketchd/sketchd/sketch"
)

// kindsFixture: a "shop" stream whose panes a real window.Aggregator built
// from seeded events and a real Badger store holds, served by the real
// router over a real query.Querier, with the store as the import target.
// Users u0..u5999 visit /cart and u4000..u9999 /checkout, once each,
// spread over 30 minutes from t0: |cart ∩ checkout| = 2000, |∪| = 10000,
// |cart \ checkout| = 4000.
type kindsFixture struct {
	*fixture
	dir  string
	db   *store.DB
	info store.StreamInfo
	spec sketchd.Stream
	cp   sketchd.Checkpoint
	lats map[string][]float64 // url -> latencies
}

const kindsAdmin = "admin-secret"

func kindsSpec(tb testing.TB) sketchd.Stream {
	tb.Helper()
	s := sketchd.DefaultStream()
	s.Name = "shop"
	s.Subject = "events.shop"
	s.GroupBy = []string{"url"}
	s.Time = sketchd.TimeSpec{Field: "ts"}
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindTheta, Field: "user"},
		"lat":     {Sketch: sketchd.KindDDSketch, Field: "ms"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "ms"},
		"visits":  {Sketch: sketchd.KindHLL, Field: "user", Precision: 10}, // dense with 10,000 users
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		tb.Fatal(err)
	}
	return s
}

func newKindsFixture(tb testing.TB) *kindsFixture {
	tb.Helper()
	f := &kindsFixture{dir: tb.TempDir(), spec: kindsSpec(tb), lats: map[string][]float64{}}
	const seed = 19
	tb.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	type visit struct {
		user, url string
		ms        float64
	}
	var visits []visit
	for u := range 10_000 {
		if u < 6000 {
			visits = append(visits, visit{user: fmt.Sprintf("u%d", u), url: "/cart"})
		}
		if u >= 4000 {
			visits = append(visits, visit{user: fmt.Sprintf("u%d", u), url: "/checkout"})
		}
	}
	rng.Shuffle(len(visits), func(i, j int) { visits[i], visits[j] = visits[j], visits[i] })
	span := 30 * time.Minute
	last := t0.Add(span).UnixNano()
	a, err := window.NewAggregator(f.spec, sketchd.Checkpoint{}, last, newPaneStore(), window.Options{Shards: 2})
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	var b window.Batch
	b.Now = last
	for i := range visits {
		v := &visits[i]
		v.ms = math.Exp(3 + rng.NormFloat64())
		f.lats[v.url] = append(f.lats[v.url], v.ms)
		ev := sketchd.Event{
			Key: sketchd.EncodeKey(v.url), Time: t0.UnixNano() + int64(i)*int64(span)/int64(len(visits)), Pos: uint64(i + 1),
			// AggregateNames order: lat, latency, users, visits.
			Values: []sketchd.Value{{Present: true, Num: v.ms}, {Present: true, Num: v.ms}, {Present: true, Bytes: []byte(v.user)}, {Present: true, Bytes: []byte(v.user)}},
		}
		b.Add(&ev)
	}
	b.Position = uint64(len(visits))
	if rej, err := a.Process(context.Background(), &b); err != nil || len(rej) > 0 {
		tb.Fatalf("process: %v, %d rejected", err, len(rej))
	}
	snap, err := a.Flush(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	f.cp = snap.Checkpoint
	f.db = openStore(tb, f.dir)
	if f.info, err = f.db.CreateStream(context.Background(), f.spec); err != nil {
		tb.Fatal(err)
	}
	if err := f.db.Commit(context.Background(), f.info.ID, sketchd.Flush{Panes: snap.Panes, Checkpoint: snap.Checkpoint}); err != nil {
		tb.Fatal(err)
	}
	f.serve(tb)
	return f
}

// serve builds the router over f.db with a new querier.
func (f *kindsFixture) serve(tb testing.TB) {
	tb.Helper()
	st := sketchd.StreamStatus{
		ID: f.info.ID, Spec: f.spec, Created: t0, State: "running",
		Watermark: f.cp.Watermark, CommittedWatermark: f.cp.Watermark, MaxEventTime: f.cp.MaxEventTime,
		LastCommit: t0.Add(time.Hour), Counters: f.cp.Counters,
	}
	h, err := New(Config{
		Streams: newFakeStreams(st), Querier: newQuerier(tb, f.db, query.Options{}), Panes: f.db,
		AdminToken: kindsAdmin, Now: func() time.Time { return t0.Add(time.Hour) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	f.fixture = &fixture{h: h, status: st}
}

func (f *kindsFixture) post(tb testing.TB, target string, body []byte, token string) response {
	tb.Helper()
	hdr := []string{"Content-Type", "application/octet-stream"}
	if token != "" {
		hdr = append(hdr, "Authorization", "Bearer "+token)
	}
	return f.do(tb, http.MethodPost, target, bytes.NewReader(body), hdr...)
}

func (f *kindsFixture) sketchOf(tb testing.TB, target string) sketch.Sketch {
	tb.Helper()
	r := f.get(tb, target)
	if r.status != http.StatusOK {
		tb.Fatalf("GET %s: %d %s", target, r.status, r.body)
	}
	sk, err := sketch.Decode(r.body)
	if err != nil {
		tb.Fatal(err)
	}
	return sk
}

var kindsRange = "from=" + url.QueryEscape(t0.Format(time.RFC3339)) + "&to=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339))

// TestSetOpThroughRouter: the set-operation endpoint over real stored theta
// panes answers A, B, A ∪ B, A ∩ B and A \ B; each equals sketch.ThetaSetOp
// over the operands' merged sketches from the sketch endpoint, and each
// 95% interval holds the exact count of the seeded data.
func TestSetOpThroughRouter(t *testing.T) {
	f := newKindsFixture(t)
	base := "/v1/streams/shop/aggregates/users"
	var got setopJSON
	f.getJSON(t, base+"/setop?"+kindsRange+"&a.where=url=/cart&b.where=url=/checkout", &got)
	a := f.sketchOf(t, base+"/sketch?"+kindsRange+"&where=url=/cart").(*sketch.Theta)
	b := f.sketchOf(t, base+"/sketch?"+kindsRange+"&where=url=/checkout").(*sketch.Theta)
	for _, c := range []struct {
		name  string
		op    sketch.ThetaOp
		got   setopResultJSON
		truth float64
	}{
		{"union", sketch.ThetaUnion, got.Union, 10_000},
		{"intersect", sketch.ThetaIntersect, got.Intersect, 2000},
		{"a_not_b", sketch.ThetaANotB, got.ANotB, 4000},
		{"a", 0, got.A.setopResultJSON, 6000},
		{"b", 0, got.B.setopResultJSON, 6000},
	} {
		d := c.got.Distinct
		t.Logf("%-9s truth %5.0f: estimate %.1f [%.1f, %.1f], retained %d, θ %.4f", c.name, c.truth, d.Estimate, d.Lower, d.Upper, c.got.Theta.Retained, c.got.Theta.Theta)
		if !(d.Lower <= c.truth && c.truth <= d.Upper) {
			t.Errorf("%s: the truth %g is outside [%g, %g]", c.name, c.truth, d.Lower, d.Upper)
		}
		if c.op != 0 {
			want, err := sketch.ThetaSetOp(c.op, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if w := setopResult(want, 4096); w != c.got {
				t.Errorf("%s: %+v, want %+v from the exported sketches", c.name, c.got, w)
			}
		}
	}
	if got.A.Events != 6000 || got.B.Events != 6000 || !slices.Equal(got.A.Where, []string{"url=/cart"}) {
		t.Errorf("operands: %+v / %+v", got.A, got.B)
	}
	// The same operands by time: the first 10 minutes against all of it.
	var byTime setopJSON
	f.getJSON(t, base+"/setop?"+kindsRange+"&a.to="+url.QueryEscape(t0.Add(10*time.Minute).Format(time.RFC3339)), &byTime)
	if byTime.A.To != rfc3339(t0.Add(10*time.Minute).UnixNano()) || byTime.B.Events != 12000 {
		t.Errorf("a.to not applied: a %+v b events %d", byTime.A, byTime.B.Events)
	}
	if e := byTime.ANotB.Distinct.Estimate; e != 0 {
		t.Errorf("A (a sub-range) \\ B (the whole range) = %g, want 0", e)
	}
	for _, bad := range []string{"c.where=url=/x", "a.step=1m", "q=0.5"} {
		if r := f.get(t, base+"/setop?"+bad); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}
	if r := f.get(t, "/v1/streams/shop/aggregates/lat/setop"); r.status != http.StatusBadRequest {
		t.Errorf("setop on a ddsketch: %d", r.status)
	}
}

// TestDDSketchThroughRouter: ddsketch answers through the router hold the
// relative-error guarantee against the exact seeded latencies.
func TestDDSketchThroughRouter(t *testing.T) {
	f := newKindsFixture(t)
	var res struct {
		Kind   string `json:"kind"`
		Groups []struct {
			Key     map[string]string `json:"key"`
			Windows []struct {
				Count            uint64  `json:"count"`
				RelativeAccuracy float64 `json:"relative_accuracy"`
				Quantiles        []struct {
					Q, Value, Lower, Upper float64
					RankError              *float64 `json:"rank_error"`
				} `json:"quantiles"`
			} `json:"windows"`
		} `json:"groups"`
	}
	f.getJSON(t, "/v1/streams/shop/aggregates/lat?"+kindsRange+"&group_by=url&q=0.01,0.5,0.99,0.999", &res)
	if res.Kind != "ddsketch" || len(res.Groups) != 2 {
		t.Fatalf("answer %+v", res)
	}
	for _, g := range res.Groups {
		exact := slices.Sorted(slices.Values(f.lats[g.Key["url"]]))
		w := g.Windows[0]
		if w.Count != uint64(len(exact)) || w.RelativeAccuracy != 0.01 || len(w.Quantiles) != 4 {
			t.Fatalf("%s: %+v", g.Key["url"], w)
		}
		for _, q := range w.Quantiles {
			x := exact[int(q.Q*float64(len(exact)-1))]
			if math.Abs(q.Value-x) > 0.01*x*(1+1e-9) || !(q.Lower <= x && x <= q.Upper) || q.RankError != nil {
				t.Errorf("%s q=%g: %g [%g, %g], exact %g", g.Key["url"], q.Q, q.Value, q.Lower, q.Upper, x)
			}
		}
	}
	if r := f.get(t, "/v1/streams/shop/aggregates/lat?cdf=1"); r.status != http.StatusBadRequest {
		t.Errorf("cdf on a ddsketch: %d", r.status)
	}
	// order_by ranks ddsketch groups by a quantile: the one kept has the
	// larger p99 of the two answered above.
	top := res.Groups[0]
	if res.Groups[1].Windows[0].Quantiles[2].Value > top.Windows[0].Quantiles[2].Value {
		top = res.Groups[1]
	}
	var ranked struct {
		Groups []struct {
			Key map[string]string `json:"key"`
		} `json:"groups"`
	}
	f.getJSON(t, "/v1/streams/shop/aggregates/lat?"+kindsRange+"&group_by=url&order_by=q0.99&limit=1", &ranked)
	if len(ranked.Groups) != 1 || ranked.Groups[0].Key["url"] != top.Key["url"] {
		t.Errorf("order_by=q0.99&limit=1: %+v, want %s", ranked.Groups, top.Key["url"])
	}
}

// TestImportThroughRouter: a t-digest exported in the exchange format, and
// a caio digest, import into a final pane exactly once per id (also after
// the store is reopened); a theta sketch imports in sketchd's format; the
// answers change accordingly; bad imports are 4xx.
func TestImportThroughRouter(t *testing.T) {
	f := newKindsFixture(t)
	lat := "/v1/streams/shop/aggregates/latency"
	paneT := t0.Add(2 * time.Minute)
	pane := url.QueryEscape(paneT.Format(time.RFC3339))
	paneRange := "from=" + pane + "&to=" + url.QueryEscape(paneT.Add(time.Minute).Format(time.RFC3339))
	before := f.sketchOf(t, lat+"/sketch?"+paneRange+"&where=url=/cart").(*sketch.TDigest)
	// Answers asked before the import fill the query caches (final panes,
	// windows of a series, rendered answers): the import must start a new
	// cache generation, so the same questions after it see the imported data.
	type eventsAnswer struct {
		Groups []struct {
			Windows []struct{ Events uint64 } `json:"windows"`
		} `json:"groups"`
	}
	cached := []string{lat + "?" + paneRange + "&where=url=/cart", lat + "?" + paneRange + "&where=url=/cart&step=1m"}
	for _, u := range cached {
		var a eventsAnswer
		f.getJSON(t, u, &a)
		if ev := a.Groups[0].Windows[0].Events; ev != before.Count() {
			t.Fatalf("%s before the import: events %d, want %d", u, ev, before.Count())
		}
	}

	// The export in the exchange format reads with caio.
	r := f.get(t, lat+"/sketch?"+kindsRange+"&format=tdigest")
	if r.status != http.StatusOK {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	ref, err := caio.FromBytes(bytes.NewReader(r.body))
	if err != nil || ref.Count() != 12000 {
		t.Fatalf("caio reads the export: %v, count %d", err, ref.Count())
	}
	if r := f.get(t, "/v1/streams/shop/aggregates/users/sketch?format=tdigest"); r.status != http.StatusBadRequest {
		t.Errorf("format=tdigest of a theta: %d", r.status)
	}

	// Import a caio digest of 1000 values into the pane of /cart.
	imp, _ := caio.New(caio.Compression(100), caio.LocalRandomNumberGenerator(1))
	for i := range 1000 {
		_ = imp.Add(10_000 + float64(i))
	}
	blob, _ := imp.AsBytes()
	target := lat + "/import?key=url=/cart&pane=" + pane + "&id=batch-1&format=tdigest"
	var res importJSON
	r = f.post(t, target, blob, kindsAdmin)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil || !res.Applied || res.Count != 1000 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	after := f.sketchOf(t, lat+"/sketch?"+paneRange+"&where=url=/cart").(*sketch.TDigest)
	if after.Count() != before.Count()+1000 || after.Max() != 10_999 {
		t.Errorf("after import: count %d (before %d), max %g", after.Count(), before.Count(), after.Max())
	}
	for _, u := range cached {
		var q eventsAnswer
		f.getJSON(t, u, &q)
		if ev := q.Groups[0].Windows[0].Events; ev != before.Count()+1000 {
			t.Errorf("%s: pane events %d, want %d (a cache kept the answer from before the import?)", u, ev, before.Count()+1000)
		}
	}

	// A retry merges nothing, also after a restart of the store.
	for range 2 {
		r = f.post(t, target, blob, kindsAdmin)
		if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res.Applied {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
		if c := f.sketchOf(t, lat+"/sketch?"+paneRange+"&where=url=/cart").Count(); c != after.Count() {
			t.Fatalf("retry changed the count: %d, want %d", c, after.Count())
		}
		if err := f.db.Close(); err != nil {
			t.Fatal(err)
		}
		f.db = openStore(t, f.dir)
		f.serve(t)
	}

	// A theta sketch of 300 new users, in sketchd's format, into a new pane
	// of a new key.
	th, _ := sketch.NewTheta(0)
	for i := range 300 {
		th.Insert(fmt.Appendf(nil, "new%d", i))
	}
	tb, _ := th.AppendBinary(nil)
	r = f.post(t, "/v1/streams/shop/aggregates/users/import?key=url=/new&pane="+pane+"&id=t1", tb, kindsAdmin)
	if r.status != http.StatusOK {
		t.Fatalf("theta import: %d %s", r.status, r.body)
	}
	var u struct {
		Groups []struct {
			Key     map[string]string `json:"key"`
			Windows []struct {
				Distinct distinctJSON `json:"distinct"`
			} `json:"windows"`
		} `json:"groups"`
	}
	f.getJSON(t, "/v1/streams/shop/aggregates/users?"+kindsRange+"&where=url=/new", &u)
	if len(u.Groups) != 1 || u.Groups[0].Windows[0].Distinct.Estimate != 300 {
		t.Errorf("imported users: %+v", u)
	}

	for _, c := range []struct {
		name, target, token string
		body                []byte
		status              int
		code                string
	}{
		{"no token", target, "", blob, http.StatusUnauthorized, codeUnauthorized},
		{"open pane", lat + "/import?key=url=/cart&pane=" + url.QueryEscape(t0.Add(29*time.Minute).Format(time.RFC3339)) + "&id=x&format=tdigest", kindsAdmin, blob, http.StatusConflict, codePaneOpen},
		{"no id", lat + "/import?key=url=/cart&pane=" + pane + "&format=tdigest", kindsAdmin, blob, http.StatusBadRequest, codeInvalidParameter},
		{"no key", lat + "/import?pane=" + pane + "&id=y&format=tdigest", kindsAdmin, blob, http.StatusBadRequest, codeInvalidParameter},
		{"bad dimension", lat + "/import?key=country=de&pane=" + pane + "&id=y&format=tdigest", kindsAdmin, blob, http.StatusBadRequest, codeInvalidParameter},
		{"garbage", lat + "/import?key=url=/cart&pane=" + pane + "&id=y&format=tdigest", kindsAdmin, []byte("garbage!garbage!garbage!"), http.StatusBadRequest, codeInvalidBody},
		{"tdigest into theta", "/v1/streams/shop/aggregates/users/import?key=url=/cart&pane=" + pane + "&id=y&format=tdigest", kindsAdmin, blob, http.StatusBadRequest, codeInvalidBody},
		{"wrong params", "/v1/streams/shop/aggregates/users/import?key=url=/cart&pane=" + pane + "&id=y", kindsAdmin, mustThetaBlob(t, 16), http.StatusBadRequest, codeInvalidBody},
		{"wrong kind", lat + "/import?key=url=/cart&pane=" + pane + "&id=y", kindsAdmin, tb, http.StatusBadRequest, codeInvalidBody},
		{"no aggregate", "/v1/streams/shop/aggregates/nope/import?key=url=/cart&pane=" + pane + "&id=y", kindsAdmin, tb, http.StatusNotFound, codeAggregateNotFound},
	} {
		r := f.post(t, c.target, c.body, c.token)
		if r.status != c.status || r.problem(t).Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
}

func mustThetaBlob(tb testing.TB, k int) []byte {
	tb.Helper()
	s, err := sketch.NewTheta(k)
	if err != nil {
		tb.Fatal(err)
	}
	s.Insert([]byte("x"))
	b, err := s.AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
