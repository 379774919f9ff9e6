// Package querymix is the query mix of the load tests: one list of API
// requests, with weights, that the k6 script (as JSON) and vegeta (as a
// targets file) both replay, so the two tools measure the same thing.
package querymix

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Query is one request of the mix.
type Query struct {
	Name string `json:"name"`
	// Range is "1h" (the API's default range: the last hour), "24h" or
	// "30d".
	Range string `json:"range"`
	// Path is the request path and query, without from/to; the range
	// adds from.
	Path   string `json:"path"`
	Weight int    `json:"weight"`
	// FromAgo is the range start, in seconds before now; 0 leaves from
	// to the API's default (to − 1h).
	FromAgo int `json:"from_ago"`
}

// Mix returns the query mix for a stream with the aggregates users (hll of
// user_id), urls (cms of url), latency (tdigest of latency_ms) and sample
// (reservoir), keyed by country and device: every kind, single keys and
// where-filters, group_by, series with step, over the last hour (weight
// 82 of 108), the last day (18) and the last 30 days (8; the stream's
// rollup tiers serve most of those).
func Mix(stream string) []Query {
	a := "/v1/streams/" + stream + "/aggregates/"
	h := func(name, path string, w int) Query { return Query{Name: name, Range: "1h", Path: path, Weight: w} }
	d := func(name, path string, w int) Query {
		return Query{Name: name, Range: "24h", Path: path, Weight: w, FromAgo: 86400}
	}
	m := func(name, path string, w int) Query {
		return Query{Name: name, Range: "30d", Path: path, Weight: w, FromAgo: 30 * 86400}
	}
	return []Query{
		h("hll", a+"users", 10),
		h("hll_where", a+"users?where=country=DE", 8),
		h("hll_group", a+"users?group_by=country", 6),
		h("hll_series", a+"users?step=5m", 4),
		h("cms_top", a+"urls?top=10", 8),
		h("cms_where_items", a+"urls?where=country=US&where=device=mobile&item=/p/1&item=/p/2&item=/p/3", 6),
		h("tdigest", a+"latency?q=0.5,0.9,0.99", 10),
		h("tdigest_where_group", a+"latency?where=device=mobile&group_by=country&q=0.99", 6),
		h("tdigest_series", a+"latency?step=5m&q=0.5,0.99", 6),
		h("tdigest_cdf", a+"latency?cdf=100,250", 4),
		h("reservoir", a+"sample?n=10", 4),
		h("reservoir_where", a+"sample?where=country=DE&n=5", 2),
		h("keys_where", "/v1/streams/"+stream+"/keys?where=country=DE", 2),
		h("stream", "/v1/streams/"+stream, 6),
		d("hll_24h", a+"users", 4),
		d("hll_24h_series", a+"users?step=1h", 2),
		d("cms_24h_where", a+"urls?where=country=DE&top=20", 3),
		d("tdigest_24h", a+"latency?q=0.99", 2),
		d("tdigest_24h_series", a+"latency?step=1h&group_by=device&q=0.5,0.99", 4),
		d("reservoir_24h", a+"sample?n=10", 3),
		m("hll_30d_series", a+"users?step=1d", 3),
		m("cms_30d_where", a+"urls?where=country=DE&top=10", 2),
		m("tdigest_30d_series", a+"latency?step=1d&q=0.5,0.99", 2),
		m("hll_30d_group", a+"users?group_by=device", 1),
	}
}

// URL returns the query's URL on base at time now: with from = now −
// FromAgo (unix seconds) when FromAgo is set.
func (q Query) URL(base string, now time.Time) string {
	u := strings.TrimSuffix(base, "/") + q.Path
	if q.FromAgo == 0 {
		return u
	}
	sep := "?"
	if strings.Contains(q.Path, "?") {
		sep = "&"
	}
	return u + sep + "from=" + strconv.FormatInt(now.Unix()-int64(q.FromAgo), 10)
}

// WriteVegeta writes a vegeta targets file (HTTP format): each query
// Weight times, interleaved so that any stretch of requests has the mix's
// proportions (vegeta sends the targets round-robin). The 24h ranges are
// fixed at now: regenerate the file for each run.
func WriteVegeta(w io.Writer, mix []Query, base string, now time.Time) error {
	for _, q := range Interleave(mix) {
		if _, err := fmt.Fprintf(w, "GET %s\n\n", q.URL(base, now)); err != nil {
			return err
		}
	}
	return nil
}

// Interleave returns the mix expanded by weight, spread evenly: query q
// appears Weight times, at positions (i+0.5)·total/Weight.
func Interleave(mix []Query) []Query {
	total := 0
	for _, q := range mix {
		total += q.Weight
	}
	type slot struct {
		pos float64
		q   Query
	}
	slots := make([]slot, 0, total)
	for _, q := range mix {
		for i := range q.Weight {
			slots = append(slots, slot{(float64(i) + 0.5) * float64(total) / float64(q.Weight), q})
		}
	}
	// Insertion sort keeps equal positions in mix order (stable).
	for i := 1; i < len(slots); i++ {
		for j := i; j > 0 && slots[j].pos < slots[j-1].pos; j-- {
			slots[j], slots[j-1] = slots[j-1], slots[j]
		}
	}
	out := make([]Query, len(slots))
	for i, s := range slots {
		out[i] = s.q
	}
	return out
}

// WriteJSON writes the mix as the k6 script reads it (MIX file).
func WriteJSON(w io.Writer, mix []Query) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(mix)
}

// RangeOf returns the range of a request URL of the mix sent about now:
// RangeAt(url, time.Now()).
func RangeOf(url string) string { return RangeAt(url, time.Now()) }

// RangeAt returns the range of a request URL of the mix sent about now:
// "1h" without a from parameter, "30d" when from is more than 2 days
// before now, else "24h".
func RangeAt(url string, now time.Time) string {
	i := strings.Index(url, "?from=")
	if i < 0 {
		i = strings.Index(url, "&from=")
	}
	if i < 0 {
		return "1h"
	}
	v := url[i+len("?from="):]
	if j := strings.IndexByte(v, '&'); j >= 0 {
		v = v[:j]
	}
	if from, err := strconv.ParseInt(v, 10, 64); err == nil && now.Unix()-from > 2*86400 {
		return "30d"
	}
	return "24h"
}

// Ranges are the ranges of the mix, shortest first.
var Ranges = []string{"1h", "24h", "30d"}
