package gen

import (
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"time"
)

// Truth is the exact answer for what a generator produced, per pane
// (granularity-aligned) and country: counts, distinct users, url
// frequencies and every latency.
type Truth struct {
	Granularity time.Duration
	Panes       map[PaneKey]*PaneTruth
}

// PaneKey identifies a (pane, country).
type PaneKey struct {
	Start   int64 // unix ns
	Country string
}

// PaneTruth is the exact content of one pane.
type PaneTruth struct {
	Events    uint64
	Users     map[string]struct{}
	URLs      map[string]uint64
	Latencies []float64
}

// Track starts recording the truth per pane of width g.
func (g *Generator) Track(granularity time.Duration) {
	g.Truth = &Truth{Granularity: granularity, Panes: map[PaneKey]*PaneTruth{}}
}

func (t *Truth) add(e Event) {
	g := int64(t.Granularity)
	ns := e.TS.UnixNano()
	start := ns - ns%g
	if ns%g < 0 {
		start -= g
	}
	k := PaneKey{start, e.Country}
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
}

// Summarize merges the panes that match keep.
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
	for _, q := range qs {
		if len(lat) > 0 {
			i := min(len(lat)-1, int(q*float64(len(lat))))
			s.Quantile[formatQ(q)] = lat[i]
		}
	}
	return s
}

func formatQ(q float64) string {
	b, _ := json.Marshal(q)
	return string(b)
}

// WriteJSON writes the per-pane truth (counts, distinct, top urls) as JSON
// lines, for accuracy checks outside Go.
func (t *Truth) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	keys := make([]PaneKey, 0, len(t.Panes))
	for k := range t.Panes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b PaneKey) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Country, b.Country))
	})
	for _, k := range keys {
		p := t.Panes[k]
		if err := enc.Encode(map[string]any{
			"start": time.Unix(0, k.Start).UTC(), "country": k.Country,
			"events": p.Events, "distinct_users": len(p.Users), "url_counts": p.URLs,
		}); err != nil {
			return err
		}
	}
	return nil
}
