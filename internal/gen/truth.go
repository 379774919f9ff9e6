package gen

import (
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Truth is the exact answer for what a generator produced, per pane
// (granularity-aligned) and key (country, device): counts, distinct users,
// url frequencies and every latency. Events dated late (Options.LateFraction)
// are meant to be too late for the stream: they are counted in Late and left
// out of the panes, as sketchd leaves them out. Invalid events are not
// recorded.
type Truth struct {
	Granularity time.Duration
	Panes       map[PaneKey]*PaneTruth
	Late        uint64 // valid events dated LateBy in the past, not in Panes
}

// PaneKey identifies a (pane, key).
type PaneKey struct {
	Start   int64 // unix ns
	Country string
	Device  string
}

// PaneTruth is the exact content of one pane of one key.
type PaneTruth struct {
	Events    uint64
	Users     map[string]struct{}
	URLs      map[string]uint64
	Latencies []float64 // in generation order
}

// Track starts recording the truth per pane of width g.
func (g *Generator) Track(granularity time.Duration) {
	g.Truth = &Truth{Granularity: granularity, Panes: map[PaneKey]*PaneTruth{}}
}

// PaneStart returns the start of the granularity-aligned pane holding t.
func (t *Truth) PaneStart(ts time.Time) int64 {
	g := int64(t.Granularity)
	ns := ts.UnixNano()
	start := ns - ns%g
	if ns%g < 0 {
		start -= g
	}
	return start
}

func (t *Truth) add(e Event) {
	if e.Late {
		t.Late++
		return
	}
	k := PaneKey{t.PaneStart(e.TS), e.Country, e.Device}
	p := t.Panes[k]
	if p == nil {
		p = &PaneTruth{Users: map[string]struct{}{}, URLs: map[string]uint64{}}
		t.Panes[k] = p
	}
	p.Events++
	p.Users[e.User] = struct{}{}
	p.URLs[e.URL]++
	p.Latencies = append(p.Latencies, e.LatencyMS)
}

// Summary is the truth of a set of panes merged: what a query over them
// must answer.
type Summary struct {
	Events   uint64             `json:"events"`
	Distinct int                `json:"distinct_users"`
	URLs     map[string]uint64  `json:"url_counts"`
	Quantile map[string]float64 `json:"latency_quantiles"`
	// Latencies are all the latencies, sorted ascending.
	Latencies []float64 `json:"-"`
}

// Summarize merges the panes that match keep. Quantile q is the
// ⌊q·n⌋-th smallest latency (0-based), keyed by q formatted as JSON.
func (t *Truth) Summarize(keep func(PaneKey) bool, qs ...float64) Summary {
	users := map[string]struct{}{}
	s := Summary{URLs: map[string]uint64{}, Quantile: map[string]float64{}}
	var lat []float64
	for k, p := range t.Panes {
		if !keep(k) {
			continue
		}
		s.Events += p.Events
		for u := range p.Users {
			users[u] = struct{}{}
		}
		for u, n := range p.URLs {
			s.URLs[u] += n
		}
		lat = append(lat, p.Latencies...)
	}
	s.Distinct = len(users)
	slices.Sort(lat)
	s.Latencies = lat
	for _, q := range qs {
		if v, ok := s.QuantileOf(q); ok {
			s.Quantile[formatQ(q)] = v
		}
	}
	return s
}

// summary is the Summary of the pane alone.
func (p *PaneTruth) summary(qs ...float64) Summary {
	s := Summary{Events: p.Events, Distinct: len(p.Users), URLs: p.URLs, Quantile: map[string]float64{},
		Latencies: slices.Sorted(slices.Values(p.Latencies))}
	for _, q := range qs {
		if v, ok := s.QuantileOf(q); ok {
			s.Quantile[formatQ(q)] = v
		}
	}
	return s
}

// QuantileOf returns the ⌊q·n⌋-th smallest latency (0-based, clamped).
func (s Summary) QuantileOf(q float64) (float64, bool) {
	n := len(s.Latencies)
	if n == 0 {
		return 0, false
	}
	return s.Latencies[max(0, min(n-1, int(q*float64(n))))], true
}

// Rank returns the fraction of latencies below v and the fraction at or
// below v: any q in [below, atOrBelow] has v as an exact q-quantile.
func (s Summary) Rank(v float64) (below, atOrBelow float64) {
	n := len(s.Latencies)
	if n == 0 {
		return 0, 0
	}
	lo := sort.SearchFloat64s(s.Latencies, v)
	hi := sort.Search(n, func(i int) bool { return s.Latencies[i] > v })
	return float64(lo) / float64(n), float64(hi) / float64(n)
}

// Item is an item and its exact count.
type Item struct {
	Item  string `json:"item"`
	Count uint64 `json:"count"`
}

// TopURLs returns the k most frequent urls, by count descending then url.
func (s Summary) TopURLs(k int) []Item {
	items := make([]Item, 0, len(s.URLs))
	for u, n := range s.URLs {
		items = append(items, Item{u, n})
	}
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Item, b.Item))
	})
	return items[:min(k, len(items))]
}

// Keys returns the pane keys in order: start, country, device.
func (t *Truth) Keys() []PaneKey {
	keys := make([]PaneKey, 0, len(t.Panes))
	for k := range t.Panes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b PaneKey) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Country, b.Country), cmp.Compare(a.Device, b.Device))
	})
	return keys
}

func formatQ(q float64) string {
	return strconv.FormatFloat(q, 'f', -1, 64)
}

// TruthQuantiles are the latency quantiles WriteJSON writes per pane.
var TruthQuantiles = []float64{0.5, 0.9, 0.99}

// PaneRecord is one line of WriteJSON: the exact truth of one pane of one
// key.
type PaneRecord struct {
	Start     time.Time          `json:"start"`
	Country   string             `json:"country"`
	Device    string             `json:"device"`
	Events    uint64             `json:"events"`
	Distinct  int                `json:"distinct_users"`
	URLs      map[string]uint64  `json:"url_counts"`
	Quantiles map[string]float64 `json:"latency_quantiles"`
	Min       float64            `json:"latency_min"`
	Max       float64            `json:"latency_max"`
}

// WriteJSON writes the per-pane truth as JSON lines in Keys order, for
// accuracy checks outside Go: counts, distinct users, url frequencies and
// latency quantiles (TruthQuantiles).
func (t *Truth) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, k := range t.Keys() {
		s := t.Panes[k].summary(TruthQuantiles...)
		if err := enc.Encode(PaneRecord{
			Start: time.Unix(0, k.Start).UTC(), Country: k.Country, Device: k.Device,
			Events: s.Events, Distinct: s.Distinct, URLs: s.URLs, Quantiles: s.Quantile,
			Min: s.Latencies[0], Max: s.Latencies[len(s.Latencies)-1],
		}); err != nil {
			return err
		}
	}
	return nil
}
