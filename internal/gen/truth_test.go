package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

// bruteEvent is an event decoded back from the JSON the generator emitted.
type bruteEvent struct {
	TS        time.Time `json:"ts"`
	Country   string    `json:"country"`
	Device    string    `json:"device"`
	User      string    `json:"user_id"`
	URL       string    `json:"url"`
	LatencyMS float64   `json:"latency_ms"`
}

type bruteKey struct {
	start           time.Time
	country, device string
}

// bruteTruth recomputes the truth from the emitted bytes alone: it decodes
// every event, classes as late those dated more than the jitter before
// their generation time, and keeps every on-time event per pane and key.
type bruteTruth struct {
	panes   map[bruteKey][]bruteEvent
	late    int
	invalid int
}

func generate(t testing.TB, o Options, n int, granularity time.Duration) (*Generator, bruteTruth) {
	t.Helper()
	g := New(o)
	g.Track(granularity)
	bt := bruteTruth{panes: map[bruteKey][]bruteEvent{}}
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range n {
		now := base.Add(time.Duration(i) * time.Second)
		b, valid := g.Next(now)
		var e bruteEvent
		err := json.Unmarshal(b, &e)
		if !valid {
			bt.invalid++
			if err == nil && e.TS.After(now.Add(-time.Hour)) && e.Country != "" && e.User != "" && e.URL != "" {
				t.Fatalf("event %d flagged invalid but complete: %s", i, b)
			}
			continue
		}
		if err != nil {
			t.Fatalf("event %d: valid event does not decode: %v: %s", i, err, b)
		}
		if now.Sub(e.TS) > o.Jitter+time.Millisecond {
			bt.late++
			continue
		}
		k := bruteKey{e.TS.Truncate(granularity), e.Country, e.Device}
		bt.panes[k] = append(bt.panes[k], e)
	}
	return g, bt
}

// bruteQuantile returns the smallest value v such that more than ⌊q·n⌋
// values are ≤ v, by counting (quadratic; small inputs only).
func bruteQuantile(vals []float64, q float64) float64 {
	n := len(vals)
	want := min(n-1, int(q*float64(n))) + 1
	best := math.Inf(1)
	for _, v := range vals {
		c := 0
		for _, x := range vals {
			if x <= v {
				c++
			}
		}
		if c >= want && v < best {
			best = v
		}
	}
	return best
}

func TestTruthMatchesEmittedEvents(t *testing.T) {
	o := Defaults()
	o.Seed = 42
	o.Countries, o.Devices, o.Users, o.URLs = 4, 2, 300, 50
	o.Jitter = 3 * time.Second
	o.LateFraction, o.LateBy = 0.05, 10*time.Minute
	o.InvalidFraction = 0.03
	const n = 4000
	g, bt := generate(t, o, n, time.Minute)

	all, invalid, late := g.Counts()
	if all != n || int(invalid) != bt.invalid || int(late) != bt.late || g.Truth.Late != late {
		t.Fatalf("counts: all %d invalid %d late %d truth.Late %d; brute force: invalid %d late %d",
			all, invalid, late, g.Truth.Late, bt.invalid, bt.late)
	}
	if bt.invalid == 0 || bt.late == 0 {
		t.Fatalf("the test needs invalid (%d) and late (%d) events", bt.invalid, bt.late)
	}
	if len(g.Truth.Panes) != len(bt.panes) {
		t.Fatalf("panes: truth has %d, brute force %d", len(g.Truth.Panes), len(bt.panes))
	}
	for k, evs := range bt.panes {
		p := g.Truth.Panes[PaneKey{k.start.UnixNano(), k.country, k.device}]
		if p == nil {
			t.Fatalf("pane %v missing from the truth", k)
		}
		users := map[string]struct{}{}
		urls := map[string]uint64{}
		var lat []float64
		for _, e := range evs {
			users[e.User] = struct{}{}
			urls[e.URL]++
			lat = append(lat, e.LatencyMS)
		}
		if p.Events != uint64(len(evs)) || len(p.Users) != len(users) || !maps.Equal(p.URLs, urls) ||
			!slices.Equal(p.Latencies, lat) {
			t.Fatalf("pane %v: truth events %d users %d urls %v; brute force %d %d %v",
				k, p.Events, len(p.Users), p.URLs, len(evs), len(users), urls)
		}
	}

	// A merged summary over one device and a range of panes, as a query
	// with where=device=... from=... to=... answers it.
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	from, to := base.Add(10*time.Minute), base.Add(50*time.Minute)
	keep := func(k PaneKey) bool {
		return k.Device == "mobile" && k.Start >= from.UnixNano() && k.Start < to.UnixNano()
	}
	qs := []float64{0, 0.25, 0.5, 0.9, 0.99, 1}
	got := g.Truth.Summarize(keep, qs...)
	var evs []bruteEvent
	for k, pe := range bt.panes {
		if k.device == "mobile" && !k.start.Before(from) && k.start.Before(to) {
			evs = append(evs, pe...)
		}
	}
	users := map[string]struct{}{}
	urls := map[string]uint64{}
	var lat []float64
	for _, e := range evs {
		users[e.User] = struct{}{}
		urls[e.URL]++
		lat = append(lat, e.LatencyMS)
	}
	if len(evs) < 500 {
		t.Fatalf("only %d events in the summary range", len(evs))
	}
	if got.Events != uint64(len(evs)) || got.Distinct != len(users) || !maps.Equal(got.URLs, urls) {
		t.Errorf("summary: events %d distinct %d; want %d %d (urls equal: %v)",
			got.Events, got.Distinct, len(evs), len(users), maps.Equal(got.URLs, urls))
	}
	for _, q := range qs {
		want := bruteQuantile(lat, q)
		if v := got.Quantile[formatQ(q)]; v != want {
			t.Errorf("quantile %v = %v, want %v", q, v, want)
		}
		below, atOrBelow := got.Rank(want)
		if rq := float64(min(len(lat)-1, int(q*float64(len(lat))))) / float64(len(lat)); rq < below || rq >= atOrBelow {
			t.Errorf("rank of the %v-quantile %v: [%v, %v] does not hold %v", q, want, below, atOrBelow, rq)
		}
	}

	// TopURLs: counts descending, and no url outside it counts more than
	// the last one in it.
	top := got.TopURLs(5)
	if len(top) != 5 {
		t.Fatalf("top: %v", top)
	}
	for i, it := range top {
		if urls[it.Item] != it.Count || (i > 0 && it.Count > top[i-1].Count) {
			t.Errorf("top[%d] = %v; brute count %d", i, it, urls[it.Item])
		}
	}
	for u, c := range urls {
		if c > top[4].Count && !slices.ContainsFunc(top, func(it Item) bool { return it.Item == u }) {
			t.Errorf("url %s (%d) missing from the top 5 %v", u, c, top)
		}
	}
}

func TestTruthWriteJSON(t *testing.T) {
	o := Defaults()
	o.Seed = 7
	o.Countries, o.Devices, o.Users, o.URLs = 3, 2, 100, 20
	g, bt := generate(t, o, 1500, time.Minute)
	var buf bytes.Buffer
	if err := g.Truth.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	lines := 0
	var last time.Time
	for dec.More() {
		var r PaneRecord
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		lines++
		if r.Start.Before(last) {
			t.Errorf("line %d: start %v before %v", lines, r.Start, last)
		}
		last = r.Start
		evs := bt.panes[bruteKey{r.Start, r.Country, r.Device}]
		var lat []float64
		for _, e := range evs {
			lat = append(lat, e.LatencyMS)
		}
		if r.Events != uint64(len(evs)) || r.Min != slices.Min(lat) || r.Max != slices.Max(lat) {
			t.Errorf("%v %s/%s: events %d min %v max %v; want %d %v %v", r.Start, r.Country, r.Device,
				r.Events, r.Min, r.Max, len(evs), slices.Min(lat), slices.Max(lat))
		}
		if got, want := r.Quantiles["0.5"], bruteQuantile(lat, 0.5); got != want {
			t.Errorf("%v %s/%s: median %v, want %v", r.Start, r.Country, r.Device, got, want)
		}
	}
	if lines != len(bt.panes) {
		t.Errorf("%d lines, want %d panes", lines, len(bt.panes))
	}
}

func TestLatencyDistributions(t *testing.T) {
	for _, dist := range []string{"lognormal", "exponential", "uniform"} {
		t.Run(dist, func(t *testing.T) {
			o := Defaults()
			o.Seed = 3
			o.LatencyMu, o.LatencyDist = math.Log(50), dist
			g := New(o)
			g.Track(time.Hour)
			now := time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)
			for range 20000 {
				g.Next(now)
			}
			s := g.Truth.Summarize(func(PaneKey) bool { return true }, 0.5)
			// The median of each: lognormal e^mu = 50, exponential 50·ln 2,
			// uniform on [0, 100] 50; allow 5% (the sample error of 20,000
			// draws is about 1%).
			want := map[string]float64{"lognormal": 50, "exponential": 50 * math.Ln2, "uniform": 50}[dist]
			if got := s.Quantile["0.5"]; math.Abs(got-want) > 0.05*want {
				t.Errorf("median %v, want %v ± 5%%", got, want)
			}
			if s.Latencies[0] < 0 {
				t.Errorf("negative latency %v", s.Latencies[0])
			}
		})
	}
}

func ExampleTruth_Summarize() {
	g := New(Options{Seed: 1, Countries: 2, Devices: 1})
	g.Track(time.Minute)
	now := time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)
	for range 100 {
		g.Next(now)
	}
	s := g.Truth.Summarize(func(k PaneKey) bool { return k.Country == "US" || k.Country == "DE" }, 0.5)
	fmt.Println(s.Events)
	// Output: 100
}
