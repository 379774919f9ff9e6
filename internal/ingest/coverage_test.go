package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// TestPartitionsUnavailable: a partition of a stream whose store ID
// carries the restoring mark (what a cluster mirror sets while its first
// restore is incomplete) is not covered: through the real Manager and
// router, every query of the stream (an aggregate, several aggregates,
// the key listing, the Prometheus API), even one answered and cached
// before, is refused 503 partitions_unavailable naming the missing
// partition, with Retry-After; the stream's status still answers. Once
// the mark is cleared the same questions answer again, equal to before,
// also while the Manager is stopped and restarted on the store.
func TestPartitionsUnavailable(t *testing.T) {
	const seed, n = 17, 400
	t.Logf("seed %d, %d events", seed, n)
	ctx := context.Background()
	f := newPartFixture(t, runNATS(t).ClientURL())
	if a := f.do(t, http.MethodPost, "/v1/streams", partSpec("cov", "cov", `,"partitions":3,"partition_by":[1]`)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	publishAcked(t, f.js, "ev.cov.", genEvents(seed, n))
	waitFor(t, 30*time.Second, "all committed", func() (bool, string) {
		st, err := f.m.Get(ctx, "cov")
		if err != nil {
			return false, err.Error()
		}
		var stored uint64
		for _, id := range st.Partitions {
			_, got := paneTotals(t, f.db, id)
			stored += got
		}
		return stored == n, fmt.Sprintf("%d events in stored panes", stored)
	})
	st, _ := f.m.Get(ctx, "cov")
	from, to := base.Add(-time.Hour), base.Add(time.Hour)
	rng := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	paths := []string{
		"/v1/streams/cov/aggregates/users?" + rng,
		"/v1/streams/cov/query?aggregate=users,urls&" + rng,
		"/v1/streams/cov/keys?" + rng,
		"/api/v1/query?" + url.Values{"query": {`sketchd_count{stream="cov"}`}, "time": {fmt.Sprint(base.Add(time.Minute).Unix())}}.Encode(),
	}
	before := make([][]byte, len(paths))
	for i, p := range paths {
		a := f.do(t, http.MethodGet, p, "")
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, a.status, a.body)
		}
		before[i] = a.body
	}

	if err := f.db.SetRestoring(ctx, st.Partitions[1], true); err != nil {
		t.Fatal(err)
	}
	refused := func(when string) {
		t.Helper()
		for _, p := range paths {
			a, hdr := f.doHeader(t, p)
			var pr struct {
				Code    string `json:"code"`
				Missing []int  `json:"missing_partitions"`
				Status  any    `json:"status"` // 503 in a problem, "error" in the envelope
				Type    string `json:"errorType"`
				Error   string `json:"error"`
			}
			if err := json.Unmarshal(a.body, &pr); err != nil {
				t.Fatalf("%s %s: %d %s", when, p, a.status, a.body)
			}
			prom := p[:4] == "/api"
			ok := a.status == http.StatusServiceUnavailable && pr.Code == "partitions_unavailable" && hdr.Get("Retry-After") != ""
			if prom {
				ok = ok && pr.Status == "error" && pr.Type == "unavailable" && bytes.Contains([]byte(pr.Error), []byte("partitions 1 of 3"))
			} else {
				ok = ok && slices.Equal(pr.Missing, []int{1})
			}
			if !ok {
				t.Errorf("%s %s: %d (Retry-After %q) %s; want 503 partitions_unavailable naming partition 1", when, p, a.status, hdr.Get("Retry-After"), a.body)
			}
		}
		if a := f.do(t, http.MethodGet, "/v1/streams/cov", ""); a.status != http.StatusOK {
			t.Errorf("%s: the status of a stream with an uncovered partition: %d %s", when, a.status, a.body)
		}
	}
	refused("running")
	f.stop(t, true)
	f.start(t)
	refused("restarted (the mark is in the store)")

	if err := f.db.SetRestoring(ctx, st.Partitions[1], false); err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		a := f.do(t, http.MethodGet, p, "")
		if a.status != http.StatusOK {
			t.Errorf("covered again: %s: %d %s", p, a.status, a.body)
			continue
		}
		if p[:4] != "/api" && !equalAnswers(t, before[i], a.body) {
			t.Errorf("covered again: %s answers\n%s\nwas\n%s", p, a.body, before[i])
		}
	}
}

// equalAnswers compares two JSON answers without their as-of, partitions
// and watermark (commit times, and a later commit's watermark).
func equalAnswers(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	var drop func(v any)
	drop = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			delete(v, "as_of")
			delete(v, "partitions")
			delete(v, "watermark")
			for _, c := range v {
				drop(c)
			}
		case []any:
			for _, c := range v {
				drop(c)
			}
		}
	}
	strip := func(raw []byte) string {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			tb.Fatalf("%s: %v", raw, err)
		}
		drop(v)
		out, _ := json.Marshal(v)
		return string(out)
	}
	return strip(a) == strip(b)
}

// doHeader GETs path and returns the answer and its headers.
func (f *partFixture) doHeader(t *testing.T, path string) (apiAnswer, http.Header) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return apiAnswer{status: resp.StatusCode, body: buf.Bytes()}, resp.Header
}
