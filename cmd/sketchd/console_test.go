package main

// The web console in a real browser: headless Chromium (Debian's chromium
// package), driven with chromedp, against the real binary running the demo
// stream with a read token. The screenshot it takes is the README's:
//
//	mkdir -p /tmp/console
//	go test ./cmd/sketchd -run Console -v -artifacts -outputdir /tmp/console
//	cp /tmp/console/_artifacts/*/console.png docs/console.png   # the path is logged

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// consoleConfig redefines the demo stream (the demo publisher feeds
// whichever stream is named demo) with 1-second panes and short lateness,
// so that within seconds there are windows with data that are final and
// windows that are not.
const consoleConfig = `
streams:
  - name: demo
    subject: demo.pageviews
    jetstream: true
    time: {field: ts, format: rfc3339}
    group_by: [country, device]
    granularity: 1s
    max_out_of_orderness: 3s
    allowed_lateness: 2s
    idle_timeout: 2s
    aggregates:
      users:   {sketch: hll, field: user_id}
      urls:    {sketch: cms, field: url, top_k: 10}
      latency: {sketch: tdigest, field: latency_ms}
      sample:  {sketch: reservoir, size: 16}
    rollups:
      - {granularity: 5s}
`

// consoleChromiumFlags are the flags Chromium needs on this closed
// network and in containers (no sandbox as root, no GPU, no background
// connections that would be refused).
var consoleChromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.NoSandbox,
	chromedp.DisableGPU,
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-background-networking", true),
}

// chromiumPath finds the browser, or fails the test saying how to
// install it: the browser test never skips quietly.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("TestConsole needs Chromium and none is installed (looked for chromium, chromium-browser, google-chrome in PATH). " +
		"Install it: apt-get update && apt-get install -y chromium   (as root; .ci/run does this on CI)")
	return ""
}

// consoleRun is one browser session against one sketchd.
type consoleRun struct {
	t      *testing.T
	ctx    context.Context // the browser tab
	base   string          // http://host:port
	token  string
	client *http.Client

	mu         sync.Mutex
	requests   []consoleRequest
	console    []string // console API calls, as text
	exceptions []string
}

type consoleRequest struct {
	url  string
	auth string // the Authorization header sent
}

// TestConsole loads the console with a read token configured, checks the
// token prompt, builds queries of every kind through the form, checks
// that the page shows the numbers the API answers for the same query (and
// marks the windows that are not final), checks the shareable URL, and
// saves a screenshot.
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and a browser")
	}
	browser := chromiumPath(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(consoleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var tb [12]byte
	_, _ = rand.Read(tb[:])
	token := "read-" + hex.EncodeToString(tb[:])
	started := time.Now()
	p := startSketchd(t, bin, "--demo", "--demo-rate", "500", "--config", cfg, "--read-token", token,
		"--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0")
	c := &consoleRun{t: t, base: p.httpURL, token: token, client: &http.Client{Timeout: 15 * time.Second}}

	c.checkPublicFiles()
	// Wait for enough data: 12 seconds committed past the start, so that
	// several 1-second windows with events are final.
	var st struct {
		CommittedWatermark *time.Time `json:"committed_watermark"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for st.CommittedWatermark == nil || st.CommittedWatermark.Before(started.Add(12*time.Second)) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo stream did not commit 12s of events within 60s (committed watermark %v)", st.CommittedWatermark)
		}
		time.Sleep(250 * time.Millisecond)
		c.api("/v1/streams/demo", &st)
	}
	// The range runs 3 minutes past now, longer than the browser's whole
	// session (120s): however slow a loaded machine makes the page, its
	// last windows are still open when it asks (with 20s, a machine at
	// load 20 asked after every window was final).
	from := started.Unix()
	to := time.Now().Unix() + 180
	// finalTo ends a range that is final: before the committed watermark
	// minus the allowed lateness (2s) and a pane.
	finalTo := st.CommittedWatermark.Add(-4 * time.Second).Unix()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		append(consoleChromiumFlags, chromedp.ExecPath(browser), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900))...)...)
	defer cancelAlloc()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(string, ...any) {}), chromedp.WithErrorf(t.Logf))
	defer cancelTab()
	ctx, cancel := context.WithTimeout(tabCtx, 120*time.Second)
	defer cancel()
	c.ctx = ctx
	c.listen()
	c.do(chromedp.EmulateViewport(1360, 900))

	// The page loads without a token, then asks for it; a wrong one is
	// refused and asked for again.
	c.do(chromedp.Navigate(c.base + "/"))
	c.do(chromedp.WaitVisible(chromedp.CSS("#token-dialog[open]")))
	c.typeInto("#token-input", "not-the-token")
	c.do(chromedp.Click(chromedp.CSS("#token-save")))
	c.waitJS(`document.getElementById("token-dialog").open && document.getElementById("token-msg").textContent.includes("refused")`)
	c.typeInto("#token-input", token)
	c.do(chromedp.Click(chromedp.CSS("#token-save")))
	c.do(chromedp.WaitVisible(chromedp.CSS(`#streams tbody tr[data-stream="demo"]`)))
	c.waitJS(`document.querySelector('#stream-detail tr[data-counter="on_time"]') !== null`)
	c.checkNoTokenInURL("after the token prompt")

	// 0. A preset (the last hour, auto step) starts on its step's grid.
	c.choose("#aggregate", "users")
	c.do(chromedp.Click(chromedp.CSS("#run")))
	c.checkPresetAligned()

	// 1. Distinct users, every second over the run: a chart with bands.
	fromS, toS := strconv.FormatInt(from, 10), strconv.FormatInt(to, 10)
	c.choose("#range", "custom")
	c.typeInto("#from", fromS)
	c.typeInto("#to", toS)
	c.typeInto("#step", "1s")
	c.do(chromedp.Click(chromedp.CSS("#run")))
	q := url.Values{"from": {fromS}, "to": {toS}, "step": {"1s"}}
	c.checkAnswer("/v1/streams/demo/aggregates/users", q, true)

	// 2. Latency quantiles by device in one country: a where filter, a
	// group_by and q, set through the form.
	var keys struct {
		Keys []map[string]string `json:"keys"`
	}
	c.api("/v1/streams/demo/keys", &keys)
	if len(keys.Keys) == 0 {
		t.Fatal("no keys")
	}
	country := keys.Keys[0]["country"]
	c.choose("#aggregate", "latency")
	c.do(chromedp.Click(chromedp.CSS(`#group-by input[value="device"]`)))
	c.do(chromedp.Click(chromedp.CSS("#where-add")))
	c.typeInto("#where .where-row:last-child .where-value", country)
	c.typeInto("#param-q", "0.5,0.99")
	c.do(chromedp.Click(chromedp.CSS("#run")))
	q = url.Values{"from": {fromS}, "to": {toS}, "step": {"1s"}, "where": {"country=" + country}, "group_by": {"device"}, "q": {"0.5,0.99"}}
	c.checkAnswer("/v1/streams/demo/aggregates/latency", q, true)

	// 3. Latency p50/p90/p99 of everything, every 2 seconds: the
	// screenshot.
	c.do(chromedp.Click(chromedp.CSS(`#group-by input[value="device"]`)))
	c.do(chromedp.Click(chromedp.CSS("#where .where-del")))
	c.typeInto("#param-q", "0.5,0.9,0.99")
	c.typeInto("#step", "2s")
	c.do(chromedp.Click(chromedp.CSS("#run")))
	q = url.Values{"from": {fromS}, "to": {toS}, "step": {"2s"}, "q": {"0.5,0.9,0.99"}}
	c.checkAnswer("/v1/streams/demo/aggregates/latency", q, true)
	shareURL := evalJS[string](c, `location.href`)

	// The counters' sparklines: rates from successive polls of the
	// stream, computed in the page.
	const spark = `document.querySelector('#stream-detail tr[data-counter="on_time"] svg.spark').dataset.values.split(",").filter(v => v !== "").map(Number)`
	c.waitJS(spark + `.length >= 4`)
	if rates := evalJS[[]float64](c, spark); slices.Max(rates) <= 0 {
		t.Errorf("on_time rates %v: the demo publishes, so some must be positive", rates)
	}
	c.screenshot()

	// Live refresh asks again by itself.
	seq := evalJS[string](c, `document.getElementById("result").dataset.seq`)
	c.choose("#live", "2")
	c.waitJS(fmt.Sprintf(`+document.getElementById("result").dataset.seq >= %s + 2`, seq))
	c.choose("#live", "0")

	// 4. Top URLs over a final range, with one asked item: bars.
	finalS := strconv.FormatInt(finalTo, 10)
	c.choose("#aggregate", "urls")
	c.typeInto("#to", finalS)
	c.typeInto("#step", "none")
	c.typeInto("#param-top", "5")
	c.typeInto("#param-item", "/p/3")
	c.do(chromedp.Click(chromedp.CSS("#run")))
	q = url.Values{"from": {fromS}, "to": {finalS}, "top": {"5"}, "item": {"/p/3"}}
	rows := c.checkAnswer("/v1/streams/demo/aggregates/urls", q, false)
	bars := evalJS[[]string](c, `[...document.querySelectorAll("#bars .bar-row[data-item]")].map(e => e.dataset.item)`)
	var wantBars []string
	for _, r := range rows {
		wantBars = append(wantBars, r["item"])
	}
	if !slices.Equal(bars, wantBars) || len(bars) != 6 {
		t.Errorf("top-k bars %q, want the answer's top 5 and the asked item %q", bars, wantBars)
	}

	// 5. Sample events over the final range: a table of events.
	c.choose("#aggregate", "sample")
	c.typeInto("#param-n", "5")
	c.do(chromedp.Click(chromedp.CSS("#run")))
	q = url.Values{"from": {fromS}, "to": {finalS}, "n": {"5"}}
	c.checkAnswer("/v1/streams/demo/aggregates/sample", q, false)
	sampleRows := evalJS[int](c, `document.querySelectorAll("#samples table.samples tbody tr").length`)
	if sampleRows != 5 {
		t.Errorf("sample table: %d rows, want 5", sampleRows)
	}

	// 6. The rollup tier: its build progress in the stream panel, and a
	// whole-range answer that says the tier served its aligned middle.
	c.checkRollupTier(started, fromS)

	// The shareable URL: opening query 3's link shows query 3 again.
	c.do(chromedp.Navigate("about:blank"), chromedp.Navigate(shareURL))
	q = url.Values{"from": {fromS}, "to": {toS}, "step": {"2s"}, "q": {"0.5,0.9,0.99"}}
	c.waitQuery(q)
	got := evalJS[struct{ Aggregate, Q, Step string }](c, `({aggregate: document.getElementById("aggregate").value,
		q: document.getElementById("param-q").value, step: document.getElementById("step").value})`)
	if got.Aggregate != "latency" || got.Q != "0.5,0.9,0.99" || got.Step != "2s" {
		t.Errorf("the shared link restored the form as %+v, want latency, q 0.5,0.9,0.99, step 2s", got)
	}
	c.checkNoTokenInURL("after the shared link")

	cancel()
	cancelTab()
	cancelAlloc()
	p.stop(t)
	c.checkTokenNotLeaked(p)
}

// ---- the browser ----

// listen records the tab's requests, console output and exceptions.
func (c *consoleRun) listen() {
	c.t.Helper()
	err := chromedp.Listen(c.ctx, func(ev any) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			auth, _ := ev.Request.Headers["Authorization"].(string)
			c.requests = append(c.requests, consoleRequest{url: ev.Request.URL, auth: auth})
		case *runtime.EventConsoleAPICalled:
			var b strings.Builder
			for _, a := range ev.Args {
				b.Write(a.Value)
				b.WriteString(a.Description)
				b.WriteByte(' ')
			}
			c.console = append(c.console, b.String())
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			c.exceptions = append(c.exceptions, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber, msg))
		}
	})
	if err != nil {
		c.t.Fatalf("browser: %v", err)
	}
}

// do runs browser actions; a failure ends the test, with the page's
// exceptions.
func (c *consoleRun) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	c.check(chromedp.Do(c.ctx, actions...))
}

// check ends the test on a browser error or an exception the page threw.
func (c *consoleRun) check(err error) {
	c.t.Helper()
	c.mu.Lock()
	ex := slices.Clone(c.exceptions)
	c.mu.Unlock()
	if err != nil {
		c.t.Fatalf("browser: %v (page exceptions: %q)", err, ex)
	}
	if len(ex) > 0 {
		c.t.Fatalf("the page threw: %q", ex)
	}
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](c *consoleRun, expr string) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](expr))
	c.check(err)
	return v
}

// typeInto replaces a text field's content by typing, then tabs out (the
// change event the form listens to).
func (c *consoleRun) typeInto(sel, text string) {
	c.t.Helper()
	arg, _ := json.Marshal(sel)
	evalJS[chromedp.Void](c, fmt.Sprintf(`document.querySelector(%s).value = ""`, arg))
	c.do(chromedp.SendKeys(chromedp.CSS(sel), text+kb.Tab))
}

// choose picks an option of a select, as a user's choice does (the value,
// then a change event).
func (c *consoleRun) choose(sel, value string) {
	c.t.Helper()
	args, _ := json.Marshal([]string{sel, value})
	ok := evalJS[bool](c, fmt.Sprintf(`(([s, v]) => { const e = document.querySelector(s); e.value = v;
		e.dispatchEvent(new Event("change", {bubbles: true})); return e.value === v; })(%s)`, args))
	if !ok {
		c.t.Fatalf("%s has no option %q", sel, value)
	}
}

// waitJS waits until a JavaScript expression is true.
func (c *consoleRun) waitJS(expr string) {
	c.t.Helper()
	_, err := chromedp.Run(c.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	c.check(err)
}

// waitQuery waits until the page shows the answer to the query with
// parameters want, and returns the path it asked.
func (c *consoleRun) waitQuery(want url.Values) string {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last struct{ State, Query, Error string }
	for time.Now().Before(deadline) {
		last = evalJS[struct{ State, Query, Error string }](c, `({state: document.getElementById("result").dataset.state,
			query: document.getElementById("result").dataset.query || "", error: document.getElementById("result-error").textContent})`)
		if u, err := url.Parse(last.Query); err == nil && last.State == "ok" && sameValues(u.Query(), want) {
			return last.Query
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("the page did not show the query %v within 15s: state %q, query %q, error %q", want, last.State, last.Query, last.Error)
	return ""
}

// checkPresetAligned waits for the page's answer to a preset range and
// checks that its from is a multiple of its step (query.js request).
func (c *consoleRun) checkPresetAligned() {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := evalJS[struct{ State, Query string }](c, `({state: document.getElementById("result").dataset.state,
			query: document.getElementById("result").dataset.query || ""})`)
		u, err := url.Parse(got.Query)
		if got.State == "ok" && err == nil && u.Query().Get("step") != "" {
			step, err := time.ParseDuration(u.Query().Get("step"))
			from, ferr := strconv.ParseInt(u.Query().Get("from"), 10, 64)
			if err != nil || ferr != nil || step < time.Second || from%int64(step/time.Second) != 0 {
				c.t.Errorf("a preset's query %s: from is not on the step's grid", got.Query)
			}
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the page did not answer the preset query with a step within 15s: state %q, query %q", got.State, got.Query)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sameValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// checkAnswer waits for the page to show the query, then compares every
// row of its data table with the API's answer to the same query, asked
// directly: the same groups, windows and measures; equal numbers for
// windows that were final when the page asked; and the windows that are
// not final marked, in the table and on the chart. wantOpen says whether
// the range must include windows that are not final. It returns the rows.
func (c *consoleRun) checkAnswer(path string, want url.Values, wantOpen bool) []map[string]string {
	c.t.Helper()
	c.checkNoTokenInURL(path)
	got := c.waitQuery(want)
	u, _ := url.Parse(got)
	if u.Path != path {
		c.t.Fatalf("the page asked %s, want %s", u.Path, path)
	}
	rows := evalJS[[]map[string]string](c, `[...document.querySelectorAll("#data-table tbody tr")].map(tr => ({...tr.dataset,
		rowClass: tr.className, text: tr.textContent}))`)
	var ans consoleAnswer
	c.api(got, &ans)
	want2 := ans.rows()
	if len(rows) != len(want2) {
		c.t.Fatalf("%s: the page shows %d rows, the API answers %d", got, len(rows), len(want2))
	}
	compared, open := 0, map[string]bool{}
	for i, r := range rows {
		w := want2[i]
		if r["group"] != w["group"] || r["start"] != w["start"] || r["q"] != w["q"] || r["item"] != w["item"] {
			c.t.Fatalf("%s: row %d is %s %s q=%s item=%s, the API's is %s %s q=%s item=%s", got, i,
				r["group"], r["start"], r["q"], r["item"], w["group"], w["start"], w["q"], w["item"])
		}
		if r["final"] == "false" {
			open[r["start"]] = true
			if !strings.Contains(r["rowClass"], "nonfinal") || !strings.Contains(r["text"], "not final") {
				c.t.Errorf("%s: row %d (%s) is not final but not marked so: class %q, text %q", got, i, r["start"], r["rowClass"], r["text"])
			}
			continue // its numbers may have changed since the page asked
		}
		if w["final"] != "true" {
			c.t.Errorf("%s: row %d (%s): final on the page, not final in the API's later answer", got, i, r["start"])
		}
		for _, k := range []string{"events", "estimate", "lower", "upper", "value", "sample"} {
			if !sameNumber(r[k], w[k]) {
				c.t.Errorf("%s: row %d (%s %s) %s: the page shows %q, the API answers %q", got, i, r["group"], r["start"], k, r[k], w[k])
			}
		}
		if r["events"] != "0" {
			compared++
		}
	}
	if compared < 3 {
		c.t.Errorf("%s: only %d final rows with events compared; want at least 3", got, compared)
	}
	if wantOpen {
		if len(open) == 0 {
			c.t.Errorf("%s: no window is not final; the range ends now, so the last ones must be open", got)
		}
		marked := evalJS[string](c, `document.getElementById("chart").dataset.nonfinalWindows || ""`)
		if marked != strconv.Itoa(len(open)) {
			c.t.Errorf("%s: the chart shades %q windows as not final, the table has %d", got, marked, len(open))
		}
		canvases := evalJS[int](c, `document.querySelectorAll("#chart canvas").length`)
		bands := evalJS[string](c, `document.getElementById("chart").dataset.bands || ""`)
		if canvases == 0 || bands == "" || bands == "0" {
			c.t.Errorf("%s: %d charts drawn with %q error bands", got, canvases, bands)
		}
	}
	c.t.Logf("%s: %d rows, %d final rows with events equal to the API's, %d windows marked not final", got, len(rows), compared, len(open))
	return rows
}

// sameNumber compares two decimal renderings of numbers as float64 (the
// page's comes from JavaScript, the API's from Go); other strings must be
// equal.
func sameNumber(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}

// checkRollupTier waits until the 5s tier is built past from+15s, checks
// that the stream panel shows its progress, then asks for distinct users
// over [from, built_to) in one window, a range that holds at least two
// whole aligned 5s blocks, and checks that the answer's line names the
// tier among what served it, as the API's resolution does. (The range
// is the tier's own progress, not the final range of steps 4 and 5: on a
// slow machine that can be shorter than one aligned block.)
func (c *consoleRun) checkRollupTier(from time.Time, fromS string) {
	c.t.Helper()
	var st struct {
		Rollups []struct {
			Granularity string     `json:"granularity"`
			BuiltTo     *time.Time `json:"built_to"`
		} `json:"rollups"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.api("/v1/streams/demo", &st)
		if len(st.Rollups) == 1 && st.Rollups[0].BuiltTo != nil && st.Rollups[0].BuiltTo.After(from.Add(15*time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the 5s rollup tier was not built past %v within 30s: %+v", from.Add(15*time.Second), st.Rollups)
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.waitJS(`(document.querySelector('#stream-detail tr[data-tier="5s"]')?.dataset.builtTo || "") !== ""`)
	finalS := strconv.FormatInt(st.Rollups[0].BuiltTo.Unix(), 10)
	// A query reads a tier as of the last commit, and an answer cached
	// before it may still name the panes: ask the API until the tier
	// serves, then the console.
	type span struct{ Source, Granularity string }
	var ans struct {
		Resolution []span `json:"resolution"`
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		c.api("/v1/streams/demo/aggregates/users?from="+fromS+"&to="+finalS, &ans)
		if slices.ContainsFunc(ans.Resolution, func(r span) bool { return r.Source == "rollup" }) {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the API's answer over [%s, %s) was not served by the tier within 20s of it being built: resolution %+v", fromS, finalS, ans.Resolution)
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.choose("#aggregate", "users")
	c.typeInto("#to", finalS)
	c.do(chromedp.Click(chromedp.CSS("#run")))
	c.waitQuery(url.Values{"from": {fromS}, "to": {finalS}})
	c.waitJS(`document.getElementById("result-meta").textContent.includes("rollup 5s")`)
	c.t.Logf("rollup tier: %s", evalJS[string](c, `document.getElementById("result-meta").textContent`))
}

func (c *consoleRun) checkNoTokenInURL(where string) {
	c.t.Helper()
	href := evalJS[string](c, `location.href`)
	if strings.Contains(href, c.token) {
		c.t.Fatalf("%s: the token is in the page's URL %s", where, href)
	}
}

// screenshot saves the viewport as PNG in the test's artifact directory.
func (c *consoleRun) screenshot() {
	c.t.Helper()
	buf, err := chromedp.Run(c.ctx, chromedp.CaptureScreenshot())
	c.check(err)
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil || cfg.Width < 1000 || cfg.Height < 600 {
		c.t.Fatalf("screenshot: %v, %dx%d", err, cfg.Width, cfg.Height)
	}
	out := filepath.Join(c.t.ArtifactDir(), "console.png")
	if err := os.WriteFile(out, buf, 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot (%dx%d): %s", cfg.Width, cfg.Height, out)
}

// checkTokenNotLeaked: the token went only in Authorization headers, to
// sketchd only (no other origin was contacted: the page works offline),
// never in a URL, the page's console or sketchd's log.
func (c *consoleRun) checkTokenNotLeaked(p *sketchdProc) {
	c.t.Helper()
	base, _ := url.Parse(c.base)
	c.mu.Lock()
	defer c.mu.Unlock()
	authed := 0
	for _, r := range c.requests {
		u, err := url.Parse(r.url)
		switch {
		case err != nil:
			c.t.Errorf("request to an unparsable URL %q", r.url)
		case u.Scheme == "data":
		case u.Host != base.Host:
			c.t.Errorf("the page contacted %s: it must load everything from sketchd", r.url)
		}
		if strings.Contains(r.url, c.token) {
			c.t.Errorf("the token is in a request URL: %s", r.url)
		}
		if r.auth == "Bearer "+c.token {
			authed++
			if !strings.HasPrefix(u.Path, "/v1/") {
				c.t.Errorf("the token was sent for %s, which is not the API", r.url)
			}
		}
	}
	if authed == 0 {
		c.t.Error("no request carried the token as Authorization: Bearer")
	}
	for _, m := range c.console {
		if strings.Contains(m, c.token) {
			c.t.Errorf("the token is in the page's console output: %s", m)
		}
	}
	for drained := false; !drained; {
		select {
		case l := <-p.logLines:
			if strings.Contains(l, c.token) {
				c.t.Errorf("the token is in sketchd's log: %s", l)
			}
		default:
			drained = true
		}
	}
	c.t.Logf("%d requests, %d with the token, %d console messages", len(c.requests), authed, len(c.console))
}

// ---- the API, directly ----

// get GETs a path, with the token when one is given, and returns the
// status and body.
func (c *consoleRun) get(path, token string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// api GETs an API path with the token and decodes the answer.
func (c *consoleRun) api(path string, out any) {
	c.t.Helper()
	status, b := c.get(path, c.token)
	if status != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

// checkPublicFiles: the console's files load without a token; the data
// does not.
func (c *consoleRun) checkPublicFiles() {
	c.t.Helper()
	for path, want := range map[string]int{"/": 200, "/console/app.js": 200, "/console/uPlot.iife.min.js": 200, "/v1/streams": 401} {
		if status, _ := c.get(path, ""); status != want {
			c.t.Errorf("GET %s without a token: %d, want %d", path, status, want)
		}
	}
}

// consoleAnswer is the part of a query answer the data table shows.
type consoleAnswer struct {
	Kind   string `json:"kind"`
	Groups []struct {
		Key     map[string]string `json:"key"`
		Windows []struct {
			Start    string `json:"start"`
			Final    bool   `json:"final"`
			Events   uint64 `json:"events"`
			Distinct *struct {
				Estimate, Lower, Upper float64
			} `json:"distinct"`
			Quantiles []struct {
				Q                   float64
				Value, Lower, Upper *float64
			} `json:"quantiles"`
			Top    []consoleFreq     `json:"top"`
			Items  []consoleFreq     `json:"items"`
			Sample []json.RawMessage `json:"sample"`
		} `json:"windows"`
	} `json:"groups"`
}

type consoleFreq struct {
	Item                   string
	Estimate, Lower, Upper uint64
}

// rows lists the answer as the page's data table should: one row per
// group, window and measure, with the values as decimal strings.
func (a *consoleAnswer) rows() []map[string]string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	opt := func(x *float64) string {
		if x == nil {
			return ""
		}
		return f(*x)
	}
	u := func(x uint64) string { return strconv.FormatUint(x, 10) }
	var out []map[string]string
	for _, g := range a.Groups {
		key, _ := json.Marshal(g.Key)
		for _, w := range g.Windows {
			base := func() map[string]string {
				return map[string]string{"group": string(key), "start": w.Start, "final": strconv.FormatBool(w.Final), "events": u(w.Events)}
			}
			switch a.Kind {
			case "hll":
				r := base()
				r["estimate"], r["lower"], r["upper"] = f(w.Distinct.Estimate), f(w.Distinct.Lower), f(w.Distinct.Upper)
				out = append(out, r)
			case "tdigest":
				for _, q := range w.Quantiles {
					r := base()
					r["q"], r["value"], r["lower"], r["upper"] = f(q.Q), opt(q.Value), opt(q.Lower), opt(q.Upper)
					out = append(out, r)
				}
			case "cms":
				if len(w.Top)+len(w.Items) == 0 {
					out = append(out, base()) // the page shows the window, with no item
				}
				for _, it := range append(slices.Clone(w.Top), w.Items...) {
					r := base()
					r["item"], r["estimate"], r["lower"], r["upper"] = it.Item, u(it.Estimate), u(it.Lower), u(it.Upper)
					out = append(out, r)
				}
			case "reservoir":
				if len(w.Sample) == 0 {
					out = append(out, base())
				}
				for _, s := range w.Sample {
					r := base()
					var buf bytes.Buffer
					_ = json.Compact(&buf, s)
					r["sample"] = buf.String()
					out = append(out, r)
				}
			}
		}
	}
	return out
}
