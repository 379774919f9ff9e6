package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// k6 writes one CSV row per metric sample (`k6 run --out csv=...`): the
// columns metric_name, timestamp, metric_value, then one per system tag
// kept (`--system-tags`), then extra_tags (the other tags, k=v joined by
// &) and metadata (the same, for the non-indexed system tags vu and
// iter). The dashboard script (loadtest/k6/dashboard.js) tags each request
// with its panel and adds to the Rate dashboard_stale, per answer, whether
// it was served stale; the runner keeps the system tags status, vu and
// iter. A request's http_req_duration row and its dashboard_stale row then
// share (vu, iter, panel): each user asks each panel once per iteration.
const (
	k6Duration = "http_req_duration"
	k6Stale    = "dashboard_stale"
)

// Answers of the dashboard's requests: what the Sketchd-Stale header said,
// or unknown when the request has no dashboard_stale sample.
const (
	answerFresh   = "fresh"
	answerStale   = "stale"
	answerUnknown = "unknown"
)

// k6Key names one request of the dashboard scenario: its user, the user's
// iteration and the panel.
type k6Key struct{ vu, iter, panel string }

// k6Columns are the positions of the columns the parser reads (-1:
// absent).
type k6Columns struct{ name, ts, value, status, extra, meta int }

// parseK6CSV reads k6's CSV output of the dashboard scenario and returns
// its requests: when each was sent (the sample's timestamp, taken by k6
// when the response ended, minus http_req_duration; timestamps in any of
// k6's time formats), its latency, whether it failed (status outside 2xx;
// 0 is a network error), its panel and its answer (stale or fresh from the
// dashboard_stale sample with the same vu, iter and panel, unknown without
// one). Rows of other metrics are skipped unread.
func parseK6CSV(r io.Reader) ([]request, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("k6 csv header: %w", err)
	}
	cols, err := k6Header(head)
	if err != nil {
		return nil, err
	}
	var reqs []request
	var keys []k6Key
	stale := map[k6Key]bool{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("k6 csv: %w", err)
		}
		if len(rec) != len(head) {
			return nil, fmt.Errorf("k6 csv line %d: %d fields, the header has %d", line, len(rec), len(head))
		}
		switch rec[cols.name] {
		case k6Duration:
			rq, err := k6Row(rec, cols)
			if err != nil {
				return nil, fmt.Errorf("k6 csv line %d: %w", line, err)
			}
			reqs = append(reqs, rq)
			keys = append(keys, k6RowKey(rec, cols))
		case k6Stale:
			v, err := strconv.ParseFloat(rec[cols.value], 64)
			if err != nil {
				return nil, fmt.Errorf("k6 csv line %d: %s value: %w", line, k6Stale, err)
			}
			stale[k6RowKey(rec, cols)] = v != 0
		}
	}
	for i, k := range keys {
		reqs[i].Answer = answerUnknown
		if s, ok := stale[k]; ok && k.vu != "" && k.iter != "" {
			reqs[i].Answer = answerFresh
			if s {
				reqs[i].Answer = answerStale
			}
		}
	}
	return reqs, nil
}

// k6Header finds the columns: metric_name, timestamp and metric_value are
// needed; status, extra_tags and metadata may be absent (then no request
// fails, or has a panel or an answer).
func k6Header(head []string) (k6Columns, error) {
	c := k6Columns{-1, -1, -1, -1, -1, -1}
	for i, h := range head {
		switch h {
		case "metric_name":
			c.name = i
		case "timestamp":
			c.ts = i
		case "metric_value":
			c.value = i
		case "status":
			c.status = i
		case "extra_tags":
			c.extra = i
		case "metadata":
			c.meta = i
		}
	}
	if c.name < 0 || c.ts < 0 || c.value < 0 {
		return c, fmt.Errorf("k6 csv header %q: want metric_name, timestamp and metric_value", head)
	}
	return c, nil
}

// k6Row reads one http_req_duration row.
func k6Row(rec []string, c k6Columns) (request, error) {
	end, err := k6Time(rec[c.ts])
	if err != nil {
		return request{}, err
	}
	ms, err := strconv.ParseFloat(rec[c.value], 64)
	if err != nil || ms < 0 {
		return request{}, fmt.Errorf("latency %q: not a duration in ms", rec[c.value])
	}
	lat := time.Duration(ms * float64(time.Millisecond))
	rq := request{At: end.Add(-lat), Latency: lat, Panel: k6Tag(rec, c.extra, "panel")}
	if c.status >= 0 {
		code, err := strconv.Atoi(rec[c.status])
		rq.Bad = err != nil || code < 200 || code > 299
	}
	return rq, nil
}

// k6Time reads a timestamp in any of k6's CSV time formats: unix (the
// default: seconds), unix_milli, unix_micro, unix_nano (told apart by
// their digits: a time after 2001 has 10, 13, 16 or 19), rfc3339 and
// rfc3339_nano.
func k6Time(s string) (time.Time, error) {
	if strings.Contains(s, "T") {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q: %w", s, err)
		}
		return t, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("timestamp %q: not a unix time or RFC 3339", s)
	}
	switch len(s) {
	case 10:
		return time.Unix(n, 0), nil
	case 13:
		return time.UnixMilli(n), nil
	case 16:
		return time.UnixMicro(n), nil
	case 19:
		return time.Unix(0, n), nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q: %d digits, not a unix time in s, ms, µs or ns", s, len(s))
}

// k6RowKey is a row's (vu, iter, panel); vu and iter are metadata (k6
// emits them so), or tags in older k6 versions.
func k6RowKey(rec []string, c k6Columns) k6Key {
	pick := func(tag string) string {
		if v := k6Tag(rec, c.meta, tag); v != "" {
			return v
		}
		return k6Tag(rec, c.extra, tag)
	}
	return k6Key{vu: pick("vu"), iter: pick("iter"), panel: k6Tag(rec, c.extra, "panel")}
}

// k6Tag returns tag's value in column col (k=v pairs joined by &), "" when
// absent.
func k6Tag(rec []string, col int, tag string) string {
	if col < 0 {
		return ""
	}
	for kv := range strings.SplitSeq(rec[col], "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == tag {
			return v
		}
	}
	return ""
}
