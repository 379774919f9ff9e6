package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// partFixture is a manager and the real router over one NATS and one
// Badger, which can be crashed and restarted on the same store.
type partFixture struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	db  *store.DB
	m   *Manager
	srv *httptest.Server
}

func newPartFixture(t *testing.T, natsURL string) *partFixture {
	nc := connect(t, natsURL)
	js, _ := jetstream.New(nc)
	f := &partFixture{nc: nc, js: js, db: openStore(t, t.TempDir())}
	f.start(t)
	t.Cleanup(func() { f.stop(t, true) })
	return f
}

func (f *partFixture) start(t *testing.T) {
	t.Helper()
	f.m = newManager(t, f.nc, f.db, Options{})
	if err := f.m.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(newTestAPI(t, f.m, f.db, 10*time.Second))
}

// stop stops the manager: gracefully (final commit and ack), or as a crash
// would (nothing more committed or acked).
func (f *partFixture) stop(t *testing.T, graceful bool) {
	t.Helper()
	if f.m == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !graceful {
		cancel()
	}
	_ = f.m.Stop(ctx)
	cancel()
	f.srv.Close()
	f.m = nil
}

func (f *partFixture) do(t *testing.T, method, path, body string) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return apiAnswer{resp.StatusCode, b.Bytes()}
}

func partSpec(name, subject, extra string) string {
	return fmt.Sprintf(`{"name":%q,"subject":"ev.%s.*","time":{"field":"ts","format":"unix_ms"},"group_by":["country"],
		"max_out_of_orderness":"5s","allowed_lateness":"30s","idle_timeout":"0s","max_future":"876000h","retention":"876000h",
		"aggregates":{"users":{"sketch":"hll","field":"user"},"urls":{"sketch":"cms","field":"url"},
		"latency":{"sketch":"tdigest","field":"ms"},"sample":{"sketch":"reservoir","size":8}}%s}`, name, subject, extra)
}

// TestPartitionedAnswersEqual ingests the same seeded events into an
// unpartitioned stream and a stream of 4 partitions of the same name (the
// reservoir's tags mix in the name), on two instances sharing one NATS,
// through a crash and a graceful restart, and asks both the same questions
// through the router:
// exact counts, HLL, count-min and reservoir answers are identical, t-digest
// quantiles within their rank error of the truth. Every partition resumes
// from its own checkpoint: no event is lost or counted twice.
func TestPartitionedAnswersEqual(t *testing.T) {
	const seed, n = 16, 6000
	t.Logf("seed %d, %d events", seed, n)
	ns := runNATS(t)
	flat, part := newPartFixture(t, ns.ClientURL()), newPartFixture(t, ns.ClientURL())
	both := []*partFixture{flat, part}
	if a := flat.do(t, http.MethodPost, "/v1/streams", partSpec("pv", "flat", `,"jetstream_stream":"PV_FLAT","dead_letter_subject":"dead.flat"`)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if a := part.do(t, http.MethodPost, "/v1/streams", partSpec("pv", "part", `,"jetstream_stream":"PV_PART","partitions":4,"partition_by":[1]`)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	dead := make(chan *nats.Msg, 4)
	if _, err := part.nc.ChanSubscribe("sketchd.invalid.pv", dead); err != nil {
		t.Fatal(err)
	}
	f := part
	began := time.Now()
	evs := genEvents(seed, n)
	ctx := context.Background()
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			e := evs[i]
			for _, s := range []string{"flat", "part"} { // the same sequence in both JetStream streams
				payload := e.json()
				if i == n/2 {
					payload = []byte(`{"ts": 1, "country": "DE"`) // bad_json, dead-lettered
				}
				if _, err := f.js.PublishAsync("ev."+s+"."+e.User, payload); err != nil {
					t.Fatal(err)
				}
			}
		}
		select {
		case <-f.js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishes not acknowledged")
		}
	}
	publish(0, n/3)
	for _, f := range both {
		f.stop(t, false) // a crash: what was not committed is redelivered
		f.start(t)
	}
	publish(n/3, 2*n/3)
	for _, f := range both {
		f.stop(t, true)
		f.start(t)
	}
	publish(2*n/3, n)
	t.Logf("published, crashed and restarted in %s", time.Since(began).Round(time.Millisecond))

	applied := uint64(n - 1)
	for _, f := range both {
		waitFor(t, 30*time.Second, "all committed", func() (bool, string) {
			st, err := f.m.Get(ctx, "pv")
			if err != nil {
				return false, err.Error()
			}
			// The counters are the runners' (ahead of the store until
			// the next commit): wait for the panes in the store too.
			ids := st.Partitions
			if len(ids) == 0 {
				ids = []uint32{st.ID}
			}
			var stored uint64
			for _, id := range ids {
				_, got := paneTotals(t, f.db, id)
				stored += got
			}
			c := st.Counters
			return c.OnTime+c.Late == applied && st.Pending == 0 && stored == applied,
				fmt.Sprintf("%+v pending %d, %d events in stored panes", c, st.Pending, stored)
		})
	}
	t.Logf("committed after %s", time.Since(began).Round(time.Millisecond))
	st, _ := f.m.Get(ctx, "pv")
	if len(st.Partitions) != 4 {
		t.Fatalf("partitions %v", st.Partitions)
	}
	var total uint64
	for p, id := range st.Partitions {
		_, got := paneTotals(t, f.db, id)
		if got == 0 {
			t.Errorf("partition %d holds no event: the stream is not partitioned", p)
		}
		cp, ok, err := f.db.Checkpoint(ctx, id)
		if err != nil || !ok {
			t.Fatalf("partition %d: no checkpoint (%v)", p, err)
		}
		t.Logf("partition %d: %d events, checkpoint at sequence %d", p, got, sketchd.PositionSeq(cp.Position))
		total += got
	}
	fst, _ := flat.m.Get(ctx, "pv")
	if _, want := paneTotals(t, flat.db, fst.ID); total != applied || want != applied {
		t.Fatalf("events in panes: partitioned %d, unpartitioned %d, want %d each", total, want, applied)
	}
	s, _ := f.js.Stream(ctx, "PV_PART")
	for _, d := range f.m.durables(st.Spec) {
		if _, err := s.Consumer(ctx, d); err != nil {
			t.Errorf("durable %s: %v", d, err)
		}
	}
	select {
	case msg := <-dead:
		if got := msg.Header.Get("Sketchd-Subject"); got != "ev.part."+evs[n/2].User {
			t.Errorf("dead letter subject %q, want the published one, ev.part.%s", got, evs[n/2].User)
		}
	case <-time.After(5 * time.Second):
		t.Error("no dead letter")
	}

	rng := fmt.Sprintf("from=%d&to=%d", base.Add(-time.Hour).Unix(), base.Add(time.Hour).Unix())
	for _, q := range []string{
		"users?group_by=country&step=1m&" + rng,
		"users?" + rng,
		"urls?group_by=country&item=/p/1&item=/p/7&item=/p/49&" + rng,
		"sample?group_by=country&" + rng,
		"sample?step=1m&" + rng,
	} {
		a, b := flat.answer(t, "pv", q), part.answer(t, "pv", q)
		if !reflect.DeepEqual(comparable(a), comparable(b)) {
			t.Errorf("%s:\nunpartitioned %v\npartitioned   %v", q, comparable(a), comparable(b))
		}
	}
	for _, f := range both {
		f.checkQuantiles(t, evs, rng)
	}
	checkCoverage(t, flat.answer(t, "pv", "users?"+rng), 1, n)
	checkCoverage(t, part.answer(t, "pv", "users?"+rng), 4, n)
}

// checkCoverage checks an answer's partitions block: every partition
// covered, the last one to commit reaching the last sequence, none beyond,
// and the answer's watermark the minimum of the partitions'.
func checkCoverage(t *testing.T, a map[string]any, count, lastSeq int) {
	t.Helper()
	b, _ := json.Marshal(a["partitions"])
	var cov struct {
		Count   int   `json:"count"`
		Covered []int `json:"covered"`
		Detail  []struct {
			Partition   int     `json:"partition"`
			PositionSeq int     `json:"position_seq"`
			Watermark   *string `json:"watermark"`
			CommittedAt *string `json:"committed_at"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(b, &cov); err != nil {
		t.Fatal(err)
	}
	want := make([]int, count)
	for i := range want {
		want[i] = i
	}
	if cov.Count != count || !slices.Equal(cov.Covered, want) || len(cov.Detail) != count {
		t.Fatalf("partitions block %s, want %d partitions, all covered", b, count)
	}
	top, minWM, minAt := 0, "", time.Time{}
	for i, d := range cov.Detail {
		if d.Partition != i || d.PositionSeq == 0 || d.PositionSeq > lastSeq || d.Watermark == nil || d.CommittedAt == nil {
			t.Errorf("partition detail %d: %+v", i, d)
			continue
		}
		top = max(top, d.PositionSeq)
		at, err := time.Parse(time.RFC3339Nano, *d.Watermark)
		if err != nil {
			t.Fatal(err)
		}
		if minWM == "" || at.Before(minAt) {
			minWM, minAt = *d.Watermark, at
		}
	}
	if top != lastSeq {
		t.Errorf("partitions reach sequence %d, want %d", top, lastSeq)
	}
	if a["watermark"] != minWM {
		t.Errorf("answer watermark %v, want the partitions' minimum %s (%s)", a["watermark"], minWM, b)
	}
	t.Logf("coverage: %s", b)
}

// answer GETs a query of stream s.
func (f *partFixture) answer(t *testing.T, s, q string) map[string]any {
	t.Helper()
	a := f.do(t, http.MethodGet, "/v1/streams/"+s+"/aggregates/"+q, "")
	if a.status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", s, q, a.status, a.body)
	}
	var v map[string]any
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// comparable keeps what must be equal between the answers of the two
// streams: per group and window, the events and the kind's answer; not the
// stream name, the watermark and finality (the minimum over partitions may
// trail), nor the pane counts (a partition's pane counts once).
func comparable(a map[string]any) []any {
	var out []any
	for _, g := range a["groups"].([]any) {
		g := g.(map[string]any)
		for _, w := range g["windows"].([]any) {
			w := w.(map[string]any)
			row := []any{g["key"], w["start"], w["events"]}
			for _, k := range []string{"distinct", "total", "items", "sample", "population"} {
				if v, ok := w[k]; ok {
					row = append(row, k, v)
				}
			}
			out = append(out, row)
		}
	}
	return out
}

// checkQuantiles compares each country's t-digest quantiles of both
// streams with the exact ones: within 3 rank errors plus one value.
func (f *partFixture) checkQuantiles(t *testing.T, evs []event, rng string) {
	t.Helper()
	byCountry := map[string][]float64{}
	for i, e := range evs {
		if i != len(evs)/2 {
			byCountry[e.Country] = append(byCountry[e.Country], e.MS)
		}
	}
	for _, s := range []string{"pv"} {
		a := f.answer(t, s, "latency?group_by=country&q=0.5&q=0.9&q=0.99&"+rng)
		for _, g := range a["groups"].([]any) {
			g := g.(map[string]any)
			vals := byCountry[g["key"].(map[string]any)["country"].(string)]
			sort.Float64s(vals)
			w := g["windows"].([]any)[0].(map[string]any)
			for _, q := range w["quantiles"].([]any) {
				q := q.(map[string]any)
				v, p, re := q["value"].(float64), q["q"].(float64), q["rank_error"].(float64)
				rank := float64(sort.SearchFloat64s(vals, v)) / float64(len(vals))
				if d := math.Abs(rank - p); d > 3*re+1/float64(len(vals)) {
					t.Errorf("%s %v q=%v: value %v has rank %v, rank error %v", s, g["key"], p, v, rank, re)
				}
			}
		}
	}
}

// TestPartitionedBoundStreamRefused: a user-made JetStream stream without
// the partition transform is refused, naming the transform it needs; specs
// with bad partition settings are refused with the field at fault.
func TestPartitionedBoundStreamRefused(t *testing.T) {
	f := newPartFixture(t, runNATS(t).ClientURL())
	if _, err := f.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BOUND", Subjects: []string{"ev.b.*"}}); err != nil {
		t.Fatal(err)
	}
	a := f.do(t, http.MethodPost, "/v1/streams", partSpec("b", "b", `,"partitions":2,"partition_by":[1],"jetstream_stream":"BOUND"`))
	if a.status != http.StatusBadRequest || !bytes.Contains(a.body, []byte(`{{partition(2,1)}}.ev.b.{{wildcard(1)}}`)) {
		t.Errorf("bound stream without the transform: %d %s", a.status, a.body)
	}
	t.Logf("refused: %s", a.body)
	for _, tc := range []struct{ extra, field string }{
		{`,"partitions":300`, "partitions"},
		{`,"partitions":-1`, "partitions"},
		{`,"partition_by":[1]`, "partition_by"},
		{`,"partitions":2,"partition_by":[2]`, "partition_by[0]"},
		{`,"partitions":2,"jetstream":false`, "partitions"},
	} {
		a := f.do(t, http.MethodPost, "/v1/streams", partSpec("c", "c", tc.extra))
		_, errs := a.problem(t)
		if a.status != http.StatusBadRequest || !slices.ContainsFunc(errs, func(e string) bool { return bytes.HasPrefix([]byte(e), []byte(tc.field+":")) }) {
			t.Errorf("%s: %d %v", tc.extra, a.status, errs)
		}
	}
}

// TestPartitionedBackfillRefused: adding an aggregate to a partitioned
// stream works, but a backfill of it is refused with the reason (each
// partition keeps its own position, which the backfill does not follow).
func TestPartitionedBackfillRefused(t *testing.T) {
	f := newPartFixture(t, runNATS(t).ClientURL())
	if a := f.do(t, http.MethodPost, "/v1/streams", partSpec("pb", "pb", `,"partitions":2,"partition_by":[1]`)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	a := f.do(t, http.MethodPatch, "/v1/streams/pb", `{"aggregates":{"visits":{"sketch":"hll","field":"user"}},"backfill":true}`)
	if a.status != http.StatusBadRequest || !bytes.Contains(a.body, []byte("partitioned")) {
		t.Errorf("backfill on a partitioned stream: %d %s, want 400 naming the reason", a.status, a.body)
	}
	if a := f.do(t, http.MethodPatch, "/v1/streams/pb", `{"aggregates":{"visits":{"sketch":"hll","field":"user"}}}`); a.status != http.StatusOK {
		t.Errorf("add without backfill: %d %s", a.status, a.body)
	}
}
