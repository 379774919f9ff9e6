package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestParseVegetaJSON(t *testing.T) {
	var b strings.Builder
	// 100 one-hour requests of 1..100 ms, two failing; 10 day-long ones of
	// 10..100 ms, one timing out.
	for i := 1; i <= 100; i++ {
		code, errStr := 200, ""
		if i == 7 {
			code = 500
		}
		if i == 8 {
			code, errStr = 0, "connection refused"
		}
		b.WriteString(`{"attack":"","seq":` + itoa(i) + `,"code":` + itoa(code) + `,"timestamp":"2026-11-25T12:49:27.19Z","latency":` +
			itoa(i*1_000_000) + `,"bytes_out":0,"bytes_in":721,"error":"` + errStr + `","body":null,"method":"GET","url":"http://127.0.0.1:1/v1/streams/pv/aggregates/users?q=1","headers":{}}` + "\n")
	}
	for i := 1; i <= 10; i++ {
		errStr := ""
		if i == 10 {
			errStr = "timeout"
		}
		b.WriteString(`{"code":200,"latency":` + itoa(i*10_000_000) + `,"error":"` + errStr + `","timestamp":"2026-11-25T12:47:39Z","url":"http://127.0.0.1:1/v1/streams/pv/aggregates/users?step=1h&from=1795524459"}` + "\n")
	}
	// 5 thirty-day ones of 1..5 ms.
	for i := 1; i <= 5; i++ {
		b.WriteString(`{"code":200,"latency":` + itoa(i*1_000_000) + `,"timestamp":"2026-11-25T12:47:39Z","url":"http://127.0.0.1:1/v1/streams/pv/aggregates/users?from=1792932459&step=1d"}` + "\n")
	}
	all, byRange, err := ParseVegetaJSON(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if all.Requests != 115 || all.Errors != 3 || all.Max != 100 {
		t.Errorf("all: %+v", all)
	}
	h, d := byRange["1h"], byRange["24h"]
	if h.Requests != 100 || h.Errors != 2 || h.P50 != 50 || h.P99 != 99 {
		t.Errorf("1h: %+v", h)
	}
	if d.Requests != 10 || d.Errors != 1 || d.P50 != 50 || d.P90 != 90 {
		t.Errorf("24h: %+v", d)
	}
	if m := byRange["30d"]; m.Requests != 5 || m.Max != 5 {
		t.Errorf("30d: %+v", m)
	}
	if _, _, err := ParseVegetaJSON(strings.NewReader("{not json\n")); err == nil {
		t.Error("bad JSON: no error")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseK6Summary(t *testing.T) {
	// A real export (k6 v1.8.1, queries.js), trimmed to the metrics read.
	b, err := os.ReadFile("testdata/k6-summary.json")
	if err != nil {
		t.Fatal(err)
	}
	all, byRange, dropped, err := ParseK6Summary(b)
	if err != nil {
		t.Fatal(err)
	}
	if all.Requests != 556 || all.Errors != 427 || dropped != 7443 {
		t.Errorf("requests %d errors %d dropped %d", all.Requests, all.Errors, dropped)
	}
	if all.P50 < 10919 || all.P50 > 10920 || all.P99 < 33629 || all.P99 > 33630 {
		t.Errorf("all: %+v", all)
	}
	if h := byRange["1h"]; h.P99 < 27233 || h.P99 > 27234 || h.P90 < 22064 || h.P90 > 22065 {
		t.Errorf("1h: %+v", h)
	}
	if _, ok := byRange["24h"]; !ok {
		t.Error("no 24h range")
	}
	if _, _, _, err := ParseK6Summary([]byte(`{"metrics":{}}`)); err == nil {
		t.Error("empty summary: no error")
	}
}

func TestParseBenchCSV(t *testing.T) {
	rows := [][]string{
		{"#RunID", "ClientID", "MsgCount", "MsgBytes", "MsgsPerSec", "BytesPerSec", "DurationSecs"},
		{"x", "S0", "200000", "23200000", "279503", "32422374.9", "0.71"},
		{"x", "S1", "200000", "23200000", "100000.5", "32422374.9", "0.71"},
	}
	got, err := parseBenchCSV(rows)
	if err != nil || got != 379503.5 {
		t.Errorf("parseBenchCSV = %v, %v; want 379503.5", got, err)
	}
	for _, bad := range [][][]string{rows[:1], {{"a", "b"}, {"1", "2"}}, {rows[0], {"x", "S0", "1", "2", "fast"}}} {
		if _, err := parseBenchCSV(bad); err == nil {
			t.Errorf("parseBenchCSV(%q): no error", bad)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	s := "Name:\tsketchd\nVmPeak:\t 3000000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n"
	rss, hwm, err := parseProcStatus(s)
	if err != nil || rss != 100<<20 || hwm != 200<<20 {
		t.Errorf("parseProcStatus = %d, %d, %v", rss, hwm, err)
	}
	if _, _, err := parseProcStatus("Name:\tx\n"); err == nil {
		t.Error("no VmRSS: no error")
	}
}

func TestLowRate(t *testing.T) {
	st := []ServiceTime{
		{Weight: 3, Latency: Latency{Mean: 10}},
		{Weight: 1, Latency: Latency{Mean: 50}},
	}
	if m := MeanServiceMS(st); m != 20 {
		t.Errorf("mean %v, want 20", m)
	}
	if r := LowRate(st); r != 25 {
		t.Errorf("low rate %d, want 25 (half of 1000/20)", r)
	}
	if r := LowRate([]ServiceTime{{Weight: 1, Latency: Latency{Mean: 1000}}}); r != 5 {
		t.Errorf("low rate floor: %d", r)
	}
}

func TestModVersion(t *testing.T) {
	out := "/root/go/bin/vegeta: go1.26.8\n\tpath\tgithub.com/tsenart/vegeta/v12\n\tmod\tgithub.com/tsenart/vegeta/v12\tv12.13.0\th1:abc=\n\tdep\tx\tv1\n"
	if got := modVersion(out); got != "github.com/tsenart/vegeta/v12 v12.13.0" {
		t.Errorf("modVersion = %q", got)
	}
}
