package api

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// defaultRange is the span of a query without from: [to - 1h, to).
const defaultRange = time.Hour

// defaultKeysLimit is the key listing's limit when none is given.
const defaultKeysLimit = 1000

// queryParams is a parsed aggregate query.
type queryParams struct {
	from, to     int64 // unix ns
	filters      []query.Filter
	groupBy      []string
	step, window int64
	// per kind
	q     []float64    // tdigest
	cdf   []float64    // tdigest
	rank  []float64    // tdigest
	trim  []float64    // tdigest
	top   int          // cms
	items []string     // cms
	n     int          // reservoir; -1 = all
	seed  *uint64      // reservoir; nil = the sample's own order
	order *query.Order // order_by and limit; nil = groups in key order
	// omitEmpty leaves out windows without events, and groups left with
	// no window (omit_empty=true; see omit.go).
	omitEmpty bool
	// moving: the range is relative to the request's now (movesWithClock).
	moving bool
}

// endpoint selects which parameters a request accepts.
type endpoint int

const (
	epQuery endpoint = iota
	epSketch
	epKeys
)

// queryValues decodes the request's query string. Unlike url.Values it
// rejects what it cannot decode (bad percent-encoding, a semicolon, text
// that is not UTF-8) instead of dropping it, and it counts the parameters
// before decoding any: a query with more than Limits.MaxParams is refused
// (422 query_too_large, limit max_parameters) before per-value work.
// (url.ParseQuery silently returns nothing past 10,000 parameters, which
// would answer a different question than the one asked.)
func (s *server) queryValues(r *http.Request) (url.Values, error) {
	raw := r.URL.RawQuery
	v := url.Values{}
	if raw == "" {
		return v, nil
	}
	if n := strings.Count(raw, "&") + 1; n > s.limits.MaxParams {
		return nil, &query.LimitError{Limit: "max_parameters", Max: int64(s.limits.MaxParams), Got: int64(n)}
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawName, rawVal, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil || !utf8.ValidString(name) {
			return nil, paramError(rawName, "the parameter name is not valid percent-encoded UTF-8")
		}
		if name == "" {
			return nil, paramError(pair, "a parameter without a name")
		}
		if strings.Contains(pair, ";") {
			return nil, paramError(name, "contains a semicolon, which is not a separator; use & between parameters and escape a literal ; as %%3B")
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return nil, paramError(name, "the value is not valid percent-encoding (escape a literal %% as %%25)")
		}
		if !utf8.ValidString(val) {
			return nil, paramError(name, "the value is not valid UTF-8")
		}
		v[name] = append(v[name], val)
	}
	return v, nil
}

// checkParams rejects unknown parameters and those that do not fit the
// endpoint or the aggregate's kind.
func checkParams(v url.Values, ep endpoint, kind sketchd.AggregateKind) error {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names) // deterministic error for several bad ones
	for _, k := range names {
		switch k {
		case "from", "to", "where":
			continue
		case "group_by", "step", "window", "omit_empty":
			switch ep {
			case epQuery:
				continue
			case epSketch:
				return paramError(k, "not allowed on the sketch endpoint: it returns one sketch merged over the whole range and where filter")
			}
		case "limit":
			if ep == epKeys || ep == epQuery {
				continue
			}
		case "order_by":
			if ep == epQuery {
				continue
			}
		case "format":
			if ep == epSketch {
				continue
			}
		}
		if want := paramKinds(k); len(want) > 0 && ep != epKeys {
			if slices.Contains(want, kind) {
				if ep == epSketch {
					return paramError(k, "not allowed on the sketch endpoint: it returns the sketch, not an answer")
				}
				continue
			}
			return paramError(k, "does not apply to a %s aggregate (it is for %s)", kind, joinKinds(want))
		}
		return paramError(k, "unknown parameter")
	}
	return nil
}

// parseQuery parses the parameters of the query and sketch endpoints for an
// aggregate agg of stream spec.
func (s *server) parseQuery(v url.Values, ep endpoint, spec *sketchd.Stream, agg sketchd.Aggregate) (queryParams, error) {
	dims := len(spec.GroupBy)
	p := queryParams{n: -1}
	if err := checkParams(v, ep, agg.Sketch); err != nil {
		return p, err
	}
	var err error
	if p.from, p.to, err = s.parseRange(v); err != nil {
		return p, err
	}
	p.moving = movesWithClock(v)
	if p.filters, err = s.parseWhere(v, spec); err != nil {
		return p, err
	}
	if p.groupBy, err = splitList(v, "group_by", dims); err != nil {
		return p, err
	}
	if p.step, err = parseDur(v, "step", s.limits.MaxRange); err != nil {
		return p, err
	}
	if p.window, err = parseDur(v, "window", s.limits.MaxRange); err != nil {
		return p, err
	}
	if p.omitEmpty, err = parseOmitEmpty(v); err != nil {
		return p, err
	}
	if p.order, err = parseOrder(v, agg, p, s.limits.MaxKeys); err != nil {
		return p, err
	}
	if k, ok := kindAPIOf(agg); ok && k.parse != nil {
		return k.parse(s, v, agg, p)
	}
	return p, nil
}

// checkSliding refuses a sliding query (window wider than step) whose
// per-key merge count, pane slots scanned × min(window/step, windows),
// exceeds Limits.MaxSlidingMerges. Geometry the querier rejects anyway (a
// step that is not a multiple of the granularity, ...) is left to it.
func (s *server) checkSliding(p *queryParams, g int64) error {
	if g <= 0 || p.step <= 0 || p.window <= p.step || p.step%g != 0 || p.window%p.step != 0 || p.to <= p.from {
		return nil
	}
	from := sketchd.PaneStart(p.from, g)
	n := (p.to - from + p.step - 1) / p.step
	slots := (n*p.step + p.window - p.step) / g
	perPane := min(p.window/p.step, n)
	// Both factors are below 2^40 (ranges and widths are bounded by
	// MaxRange, the granularity is at least 1s): no overflow in int64
	// unless their product is past any limit, so compare by division.
	if perPane > 0 && slots > s.limits.MaxSlidingMerges/perPane {
		got := int64(math.MaxInt64)
		if slots <= math.MaxInt64/perPane {
			got = slots * perPane
		}
		return &query.LimitError{Limit: "max_sliding_merges", Max: s.limits.MaxSlidingMerges, Got: got}
	}
	return nil
}

// parseRange reads from and to: RFC 3339, unix seconds (integer or
// fractional), unix milliseconds, or relative to now (now-1h, now-1d/d;
// see reltime.go). to defaults to now, from to to - 1h.
func (s *server) parseRange(v url.Values) (int64, int64, error) {
	var from, to int64
	now := s.now()
	if t, ok, err := parseTime(v, "to", now); err != nil {
		return 0, 0, err
	} else if ok {
		to = t
	} else {
		to = now.UnixNano()
	}
	if t, ok, err := parseTime(v, "from", now); err != nil {
		return 0, 0, err
	} else if ok {
		from = t
	} else {
		from = to - int64(defaultRange)
	}
	if to <= from {
		return 0, 0, paramError("to", "must be after from (to defaults to now, from to to - 1h)")
	}
	if span := to - from; span > int64(s.limits.MaxRange) || span < 0 {
		return 0, 0, &query.LimitError{Limit: "max_range_seconds", Max: int64(s.limits.MaxRange / time.Second), Got: int64(uint64(to-from) / uint64(time.Second))}
	}
	return from, to, nil
}

// movesWithClock reports whether a query's range is relative to the
// request's now, so that the same query string asks for another range a
// minute later: to left out (now) or relative to now, or from relative to
// now. A to given as a time, with from left out, is a fixed range.
func movesWithClock(v url.Values) bool {
	relative := func(name string) bool {
		vals := v[name]
		return len(vals) == 1 && strings.HasPrefix(vals[0], "now")
	}
	_, toGiven := v["to"]
	return !toGiven || relative("to") || relative("from")
}

// Times must fit in int64 nanoseconds with room for pane arithmetic.
var (
	minTime = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	maxTime = time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

func parseTime(v url.Values, name string, now time.Time) (int64, bool, error) {
	vals, ok := v[name]
	if !ok {
		return 0, false, nil
	}
	if len(vals) != 1 {
		return 0, false, paramError(name, "given %d times; give it once", len(vals))
	}
	t, err := parseTimeValue(vals[0], now, name == "to")
	if err != nil {
		return 0, false, paramError(name, "%s", err.Error())
	}
	if t < minTime || t > maxTime {
		return 0, false, paramError(name, "out of range (years 1700 to 2249)")
	}
	return t, true, nil
}

type timeError string

func (e timeError) Error() string { return string(e) }

// parseTimeValue parses RFC 3339, unix seconds, unix milliseconds (a
// number whose integer part is at least 1e11 in absolute value: as seconds
// it would be past the year 5000), exactly (no float rounding of the
// fraction), or a time relative to now (parseRelative; roundUp for to).
func parseTimeValue(s string, now time.Time, roundUp bool) (int64, error) {
	bad := timeError("want RFC 3339 (2026-01-02T15:04:05Z), unix seconds (1767366245 or 1767366245.5), unix milliseconds (1767366245000) or relative to now (now-1h, now-1d/d), got " + strconv.Quote(s))
	if s == "" {
		return 0, bad
	}
	if strings.HasPrefix(s, "now") {
		t, err := parseRelative(s, now, roundUp)
		if err != nil {
			return 0, err
		}
		if t.Year() < 1700 || t.Year() >= 2250 {
			return 0, timeError("out of range (years 1700 to 2249)")
		}
		return t.UnixNano(), nil
	}
	if strings.ContainsAny(s, "T:-") && !isNumber(s) {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, bad
		}
		if t.Year() < 1700 || t.Year() >= 2250 {
			return 0, timeError("out of range (years 1700 to 2249)")
		}
		return t.UnixNano(), nil
	}
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	sec, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || (intPart == "" || intPart == "-") {
		return 0, bad
	}
	// unit is a second, or a millisecond for a number too large to be
	// seconds of a representable time; digits: the fraction's precision.
	unit, digits := int64(time.Second), 9
	if sec >= msEpochMin || sec <= -msEpochMin {
		unit, digits = int64(time.Millisecond), 6
	}
	if sec > math.MaxInt64/unit-1 || sec < math.MinInt64/unit+1 {
		return 0, timeError("out of range (years 1700 to 2249)")
	}
	var ns int64
	if frac != "" {
		if len(frac) > digits {
			frac = frac[:digits]
		}
		for _, c := range frac {
			if c < '0' || c > '9' {
				return 0, bad
			}
		}
		n, _ := strconv.ParseInt(frac+strings.Repeat("0", digits-len(frac)), 10, 64)
		ns = n
	}
	if neg {
		ns = -ns
	}
	return sec*unit + ns, nil
}

// msEpochMin is the smallest integer part read as unix milliseconds:
// 1e11 seconds is past the year 5000, 1e11 milliseconds is March 1973.
const msEpochMin = 100_000_000_000

func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// parseWhere reads the where filters (repeatable; syntax in
// query.ParseWhere) of a stream: filters on the same dimension combine as
// "in any listed set and in no excluded one", different dimensions AND.
// The values of all filters count against Limits.MaxWhereValues.
func (s *server) parseWhere(v url.Values, spec *sketchd.Stream) ([]query.Filter, error) {
	vals := v["where"]
	if len(vals) == 0 {
		return nil, nil
	}
	n := 0
	for _, w := range vals {
		n += strings.Count(w, ",") + 1
	}
	if n > s.limits.MaxWhereValues {
		return nil, paramError("where", "at most %d values, got %d", s.limits.MaxWhereValues, n)
	}
	return query.ParseWhere(spec, vals)
}

// splitList reads a list given comma-separated, repeated, or both, of at
// most max elements. It counts the elements before splitting, so a huge
// list is refused without allocating per element.
func splitList(v url.Values, name string, max int) ([]string, error) {
	vals := v[name]
	n := 0
	for _, s := range vals {
		n += strings.Count(s, ",") + 1
	}
	if n > max {
		return nil, paramError(name, "at most %d values, got %d", max, n)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]string, 0, n)
	for _, s := range vals {
		for _, e := range strings.Split(s, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				return nil, paramError(name, "empty element in %q", s)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *server) parseFloats(v url.Values, name string) ([]float64, error) {
	list, err := splitList(v, name, s.limits.MaxQuantiles)
	if err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(list))
	for _, e := range list {
		f, err := strconv.ParseFloat(e, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, paramError(name, "want a finite number, got %q", e)
		}
		out = append(out, f)
	}
	return out, nil
}

// parseDur reads a positive duration of at most max (Go syntax or whole
// days).
func parseDur(v url.Values, name string, max time.Duration) (int64, error) {
	vals, ok := v[name]
	if !ok {
		return 0, nil
	}
	if len(vals) != 1 {
		return 0, paramError(name, "given %d times; give it once", len(vals))
	}
	tooLong := paramError(name, "must be at most the maximum range %s", sketchd.Duration(max))
	// Check whole days before converting: a large day count overflows.
	if days, ok := strings.CutSuffix(strings.TrimSpace(vals[0]), "d"); ok {
		if n, err := strconv.ParseInt(days, 10, 64); err == nil && n > int64(max/(24*time.Hour)) {
			return 0, tooLong
		}
	}
	d, err := sketchd.ParseDuration(vals[0])
	if err != nil {
		return 0, paramError(name, "%s", err.Error())
	}
	if d <= 0 {
		return 0, paramError(name, "must be positive, got %s", d)
	}
	if d.Std() > max {
		return 0, tooLong
	}
	return int64(d), nil
}

func parseInt(v url.Values, name string, def, lo, hi int) (int, error) {
	vals, ok := v[name]
	if !ok {
		return def, nil
	}
	if len(vals) != 1 {
		return 0, paramError(name, "given %d times; give it once", len(vals))
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil {
		return 0, paramError(name, "want an integer, got %q", vals[0])
	}
	if n < lo || n > hi {
		return 0, paramError(name, "must be %d..%d, got %d", lo, hi, n)
	}
	return n, nil
}

// joinKinds lists kinds for a message: "tdigest or ddsketch".
func joinKinds(ks []sketchd.AggregateKind) string {
	ss := make([]string, len(ks))
	for i, k := range ks {
		ss[i] = string(k)
	}
	return strings.Join(ss, " or ")
}
