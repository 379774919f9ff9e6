package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sample is one line of the Prometheus text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics are the samples of one scrape.
type Metrics []Sample

// ParseMetrics reads the Prometheus text exposition format (comments and
// blank lines skipped; timestamps ignored).
func ParseMetrics(r io.Reader) (Metrics, error) {
	var ms Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := Sample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %d: unterminated labels: %q", n, line)
			}
			if err := parseLabels(line[i+1:j], s.Labels); err != nil {
				return nil, fmt.Errorf("metrics line %d: %w", n, err)
			}
			rest = line[j+1:]
		} else if i >= 0 {
			s.Name, rest = line[:i], line[i:]
		} else {
			return nil, fmt.Errorf("metrics line %d: no value: %q", n, line)
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %d: no value: %q", n, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value: %w", n, err)
		}
		s.Value = v
		ms = append(ms, s)
	}
	return ms, sc.Err()
}

func parseLabels(s string, into map[string]string) error {
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return fmt.Errorf("bad labels at %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return fmt.Errorf("unterminated label value in %q", s)
		}
		into[name] = val.String()
		s = strings.TrimLeft(s[i+1:], ", ")
	}
	return nil
}

// Sum returns the sum of the samples named name whose labels include
// every pair of match (given as "k", "v", ...).
func (ms Metrics) Sum(name string, match ...string) float64 {
	total := 0.0
	for _, s := range ms {
		if s.matches(name, match) {
			total += s.Value
		}
	}
	return total
}

// Has reports whether a sample named name has labels that include every
// pair of match (given as "k", "v", ...).
func (ms Metrics) Has(name string, match ...string) bool {
	return slices.ContainsFunc(ms, func(s Sample) bool { return s.matches(name, match) })
}

// matches reports whether s is named name and its labels include every
// pair of match.
func (s Sample) matches(name string, match []string) bool {
	if s.Name != name {
		return false
	}
	for i := 0; i+1 < len(match); i += 2 {
		if s.Labels[match[i]] != match[i+1] {
			return false
		}
	}
	return true
}

// Processed returns the events of a stream sketchd has dealt with: applied
// (on time or late), too late, future, and invalid.
func (ms Metrics) Processed(stream string) float64 {
	return ms.Sum("sketchd_events_total", "stream", stream) + ms.Sum("sketchd_invalid_events_total", "stream", stream)
}

// Applied returns the events applied to a stream's sketches.
func (ms Metrics) Applied(stream string) float64 {
	return ms.Sum("sketchd_events_total", "stream", stream, "outcome", "on_time") +
		ms.Sum("sketchd_events_total", "stream", stream, "outcome", "late")
}

// SumIf returns the sum of the samples named name whose labels satisfy
// keep.
func (ms Metrics) SumIf(name string, keep func(labels map[string]string) bool) float64 {
	total := 0.0
	for _, s := range ms {
		if s.Name == name && keep(s.Labels) {
			total += s.Value
		}
	}
	return total
}

// APIRequests returns the requests to /v1 routes answered so far.
func (ms Metrics) APIRequests() float64 {
	return ms.SumIf("sketchd_http_requests_total", func(l map[string]string) bool {
		return strings.HasPrefix(l["route"], "/v1")
	})
}

// SlowErrors summarizes the error responses of sketchd's request log.
type SlowErrors struct {
	Errors   int           `json:"errors"`    // responses ≥ 500
	PastDue  int           `json:"past_due"`  // of which written more than 1s past the query timeout
	Longest  time.Duration `json:"longest"`   // the longest error response
	Timeouts int           `json:"timeouts"`  // 504
	Canceled int           `json:"cancelled"` // 503 (the client went away, or unavailable)
}

// ParseRequestLog reads sketchd's JSON log and summarizes the "http
// request" lines with a status of 500 or more (logged at warn level).
func ParseRequestLog(r io.Reader, timeout time.Duration) (SlowErrors, error) {
	var s SlowErrors
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"msg":"http request"`)) {
			continue
		}
		var l struct {
			Status   int   `json:"status"`
			Duration int64 `json:"duration"` // ns
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return s, fmt.Errorf("request log: %w", err)
		}
		if l.Status < 500 {
			continue
		}
		s.Errors++
		d := time.Duration(l.Duration)
		s.Longest = max(s.Longest, d)
		if d > timeout+time.Second {
			s.PastDue++
		}
		switch l.Status {
		case 504:
			s.Timeouts++
		case 503:
			s.Canceled++
		}
	}
	return s, sc.Err()
}
