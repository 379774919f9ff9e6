package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	caio "github.com/caio/go-tdigest/v4"
)

const kindsE2EAdmin = "kinds-admin-token"

// kindsE2EConfig: one JetStream stream keyed by url with the theta,
// ddsketch, tdigest and hll kinds; events dated in the past, final as soon
// as the watermark passes them.
var kindsE2EConfig = `
log_level: info
flush_interval: 100ms
admin_token: ` + kindsE2EAdmin + `
streams:
  - name: shop
    subject: kinds.shop
    jetstream: true
    time: {field: ts, format: unix_ms}
    group_by: [url]
    granularity: 1m
    max_out_of_orderness: 1s
    allowed_lateness: 0s
    idle_timeout: 1s
    max_future: 876000h
    aggregates:
      users:   {sketch: theta, field: user, nominal_entries: 1024}
      lat:     {sketch: ddsketch, field: ms}
      latency: {sketch: tdigest, field: ms}
      visits:  {sketch: hll, field: user}
`

// TestKindsEndToEnd runs the binary with real NATS (JetStream) and Badger:
// events published over JetStream become theta, ddsketch, tdigest and hll
// panes; the set-operation endpoint answers /cart ∩ /checkout within its
// bounds; ddsketch quantiles hold α; the t-digest exchange export reads
// with caio; a caio digest imports into a final pane once per id, also
// across a restart; the Python decoder reads the HLL and t-digest exports.
func TestKindsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	p := startWithConfig(t, dir, kindsE2EConfig)
	_, js := p.connect(t)

	// Users u0..u2999 visit /cart, u2000..u4999 /checkout: ∩ = 1000.
	const seed = 23
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Minute)
	type ev struct {
		TS   int64   `json:"ts"`
		URL  string  `json:"url"`
		User string  `json:"user"`
		MS   float64 `json:"ms"`
	}
	var evs []ev
	for u := range 5000 {
		if u < 3000 {
			evs = append(evs, ev{URL: "/cart", User: fmt.Sprint("u", u)})
		}
		if u >= 2000 {
			evs = append(evs, ev{URL: "/checkout", User: fmt.Sprint("u", u)})
		}
	}
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	lats := map[string][]float64{}
	ctx := context.Background()
	for i := range evs {
		e := &evs[i]
		e.TS = base.Add(time.Duration(i) * 30 * time.Millisecond).UnixMilli() // 3 minutes
		e.MS = math.Round(math.Exp(3+rng.NormFloat64())*100) / 100
		lats[e.URL] = append(lats[e.URL], e.MS)
		b, _ := json.Marshal(e)
		if _, err := js.Publish(ctx, "kinds.shop", b); err != nil {
			t.Fatal(err)
		}
	}
	rg := "from=" + url.QueryEscape(base.Add(-time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Add(10*time.Minute).Format(time.RFC3339))
	api := p.httpURL + "/v1/streams/shop/aggregates/"
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var setop struct {
		A, B, Union, Intersect, ANotB struct {
			Events   uint64 `json:"events"`
			Distinct struct {
				Estimate, Lower, Upper float64
			} `json:"distinct"`
		}
	}
	waitFor("all events committed", func() bool {
		return getJSON(t, api+"users/setop?"+rg+"&a.where=url=/cart&b.where=url=/checkout", &setop) == http.StatusOK &&
			setop.A.Events == 3000 && setop.B.Events == 3000
	})
	// Go's JSON field matching is case-insensitive: a_not_b needs its tag.
	var raw map[string]json.RawMessage
	getJSON(t, api+"users/setop?"+rg+"&a.where=url=/cart&b.where=url=/checkout", &raw)
	_ = json.Unmarshal(raw["a_not_b"], &setop.ANotB)
	for name, c := range map[string]struct {
		got   struct{ Estimate, Lower, Upper float64 }
		truth float64
	}{
		"a": {setop.A.Distinct, 3000}, "b": {setop.B.Distinct, 3000}, "union": {setop.Union.Distinct, 5000},
		"intersect": {setop.Intersect.Distinct, 1000}, "a_not_b": {setop.ANotB.Distinct, 2000},
	} {
		t.Logf("%-9s truth %4.0f: estimate %.1f [%.1f, %.1f]", name, c.truth, c.got.Estimate, c.got.Lower, c.got.Upper)
		if !(c.got.Lower <= c.truth && c.truth <= c.got.Upper) {
			t.Errorf("%s: truth %g outside [%g, %g]", name, c.truth, c.got.Lower, c.got.Upper)
		}
	}

	// ddsketch: relative error ≤ α against the exact values.
	var dd struct {
		Groups []struct {
			Key     map[string]string `json:"key"`
			Windows []struct {
				Count     uint64                       `json:"count"`
				Quantiles []struct{ Q, Value float64 } `json:"quantiles"`
			} `json:"windows"`
		} `json:"groups"`
	}
	if code := getJSON(t, api+"lat?"+rg+"&group_by=url&q=0.01,0.5,0.99", &dd); code != http.StatusOK || len(dd.Groups) != 2 {
		t.Fatalf("ddsketch query: %d %+v", code, dd)
	}
	for _, g := range dd.Groups {
		exact := slices.Sorted(slices.Values(lats[g.Key["url"]]))
		for _, q := range g.Windows[0].Quantiles {
			x := exact[int(q.Q*float64(len(exact)-1))]
			if math.Abs(q.Value-x) > 0.01*x*(1+1e-9) {
				t.Errorf("%s q=%g: %g, exact %g", g.Key["url"], q.Q, q.Value, x)
			}
		}
	}

	// Export in the exchange format; caio reads it.
	exch := getBody(t, api+"latency/sketch?"+rg+"&format=tdigest")
	if d, err := caio.FromBytes(bytes.NewReader(exch)); err != nil || d.Count() != 6000 {
		t.Fatalf("caio reads the export: %v", err)
	}
	// The Python decoder reads the HLL and both t-digest exports.
	for _, c := range []struct {
		blob []byte
		args []string
		kind string
	}{
		{getBody(t, api+"visits/sketch?"+rg), nil, "hll"},
		{getBody(t, api+"latency/sketch?"+rg), nil, "tdigest"},
		{exch, []string{"--tdigest"}, "tdigest"},
	} {
		out := runPython(t, c.blob, c.args...)
		if out["kind"] != c.kind || out["count"].(float64) != 6000 {
			t.Errorf("python decoded %v", out)
		}
	}

	// Import a caio digest of 500 values into the first pane of /cart,
	// which is final: once, also when retried after a restart.
	imp, _ := caio.New(caio.Compression(100), caio.LocalRandomNumberGenerator(1))
	for i := range 500 {
		_ = imp.Add(5000 + float64(i))
	}
	blob, _ := imp.AsBytes()
	pane := url.QueryEscape(base.Format(time.RFC3339))
	target := api + "latency/import?key=url=/cart&pane=" + pane + "&id=e2e-1&format=tdigest"
	count := func() uint64 {
		var res struct {
			Groups []struct {
				Windows []struct{ Count uint64 } `json:"windows"`
			} `json:"groups"`
		}
		getJSON(t, api+"latency?"+rg+"&where=url=/cart", &res)
		return res.Groups[0].Windows[0].Count
	}
	if c := count(); c != 3000 {
		t.Fatalf("count before the import %d", c)
	}
	for i, wantApplied := range []bool{true, false} {
		if i == 1 {
			p.stop(t)
			p = p.restart(t)
			api = p.httpURL + "/v1/streams/shop/aggregates/"
			target = api + "latency/import?key=url=/cart&pane=" + pane + "&id=e2e-1&format=tdigest"
		}
		var res struct{ Applied bool }
		if code := postJSON(t, target, blob, &res); code != http.StatusOK || res.Applied != wantApplied {
			t.Fatalf("import %d: %d applied %v, want %v", i, code, res.Applied, wantApplied)
		}
		if c := count(); c != 3500 {
			t.Errorf("after import %d: count %d, want 3500", i, c)
		}
	}
	p.stop(t)
}

func getBody(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}

func postJSON(t *testing.T, u string, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+kindsE2EAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("POST %s: %d %s", u, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// runPython runs docs/examples/decode_sketch.py; python3 must be there.
func runPython(t *testing.T, blob []byte, args ...string) map[string]any {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not installed (apt-get install python3): %v", err)
	}
	f := filepath.Join(t.TempDir(), "export.bin")
	if err := os.WriteFile(f, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, append([]string{filepath.Join("..", "..", "docs", "examples", "decode_sketch.py"), f}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("decode_sketch.py: %v\n%s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return m
}
